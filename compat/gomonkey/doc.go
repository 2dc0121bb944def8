// Package gomonkey is a drop-in replacement for gomonkey v2
// (github.com/agiledragon/gomonkey/v2) on top of Switchboard: the same
// functions, methods and types, with patches made by Switchboard's engine,
// which is atomic while other goroutines run the target, can call the
// original, and refuses what it cannot patch everywhere. Migrating is one
// import line:
//
//	import "github.com/switchboard-go/switchboard/compat/gomonkey"
//
// Patches are process-wide, as gomonkey's are. Where gomonkey would patch
// silently and miss calls (a function the compiler inlined), or could not
// patch at all, Apply* panics with the engine's *registry.Error, as
// gomonkey panics on its own errors: nothing fails silently. Run tests with
// -gcflags=all=-l, as gomonkey's documentation asks. Without it, go test's
// binaries (which have no DWARF) cannot prove that any function was not
// inlined, so every patch is refused; TestMain can call
// registrytest.Main, which reruns the tests in a binary with DWARF, where
// a //go:noinline target is enough.
//
// Differences from gomonkey, all in the direction of safety:
//
//   - Reset and Origin restore the state before this Patches' patches in
//     reverse order, per function: undoing one Patches never undoes a patch
//     another Patches made later on the same function.
//   - A value method applied through a pointer type (ApplyMethod(&t, "M",
//     ...) where M has a value receiver) patches the method with the body,
//     T.M, so direct calls on values see the double too.
//   - ApplyPrivateMethod finds the method by its symbol name
//     (registry.Lookup) and checks the double's type against the binary.
//
// It owns the translation of gomonkey's API onto registry's public API and
// its undo layers. It must not reach the engine packages (dispatch, unwind)
// or write code itself: every patch goes through registry.
package gomonkey
