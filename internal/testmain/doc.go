// Package testmain runs a package's tests in a test binary that keeps its
// DWARF. go test links test binaries with -s -w; without DWARF, Set cannot
// prove that a function was not inlined and refuses it (ErrInlined). Tests
// that patch call Run from TestMain:
//
//	func TestMain(m *testing.M) { testmain.Run(m) }
//
// When the running binary lacks DWARF, Run rebuilds it once with
// go test -c (which keeps DWARF) in the package directory, with the build
// settings the binary records (-race, -tags, -gcflags, -ldflags without -s
// and -w, -cover, -buildmode, -trimpath), runs it with the same arguments
// and exits with its status. Otherwise, and in the rebuilt binary, it runs
// the tests.
//
// It owns the TestMain that reruns a package's tests in a binary with DWARF.
// It must not patch anything.
package testmain
