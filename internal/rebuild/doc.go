// Package rebuild runs a Go program again from a build that keeps its
// DWARF. go run and go test link with -s -w; without DWARF, Set cannot
// prove that a function was not inlined unless nothing in the binary was
// (-gcflags=all=-l), and refuses it (ErrInlined). Program serves main
// packages (the switchboard command); internal/testmain serves tests.
//
// It owns rebuilding the running test binary or command with DWARF. It must
// not import the engine or patch anything.
package rebuild
