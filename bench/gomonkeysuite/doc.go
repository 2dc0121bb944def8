// Package gomonkeysuite runs gomonkey v2.13.0's own test suite against
// Switchboard's drop-in package compat/gomonkey. It is a separate module
// so that Switchboard's users never download gomonkey or goconvey, and it
// holds none of gomonkey's code: TestGomonkeySuite fetches the module
// through the Go module proxy at test time, copies its test tree (the
// *_test.go files and the fake and dsl packages they import) into a
// temporary module, points their imports of
// github.com/agiledragon/gomonkey/v2 at compat/gomonkey, and runs it:
//
//	cd bench/gomonkeysuite && go test ./...
//
// With -gcflags=all=-l every test must pass. Without it, a test may fail
// only because the engine refused a target loudly (the compiler inlined
// it), never with a wrong result.
package gomonkeysuite
