// Package registrytest patches functions for the length of one test.
//
//	func TestDeadline(t *testing.T) {
//		t.Parallel()
//		registrytest.Set(t, time.Now, func() time.Time { return fixed })
//		// this test's goroutine, and the goroutines it starts from now on,
//		// see fixed; parallel tests see their own clock or the real one
//	}
//
// Set scopes the patch to the test's goroutine tree: the goroutine that
// calls Set and every goroutine started from it (directly or not) after
// the Set. Goroutines started before the Set, or by other tests, keep
// calling the original. So a patch must be set before starting the
// goroutines that should see it: set it first thing in the test, before
// starting servers or workers.
//
// SetGlobal patches process-wide, for tests that must reach goroutines
// they did not start (a server started in TestMain, a package's pool).
// Parallel tests then see each other's patches: do not mix SetGlobal with
// t.Parallel on the same function.
//
// Both restore the previous state in t.Cleanup: patches of one function
// stack, and each cleanup puts back what was in force before its own
// patch (the undo semantics of gomonkey and mockey), so nested helpers
// and repeated patches unwind in order. A patch Switchboard refuses
// (inlined, wrapper, runtime, ...) fails the test with t.Fatalf naming the
// function and the reason.
//
// A function the compiler inlined is refused (ErrInlined), since its
// inlined copies would keep the old behaviour; so is every function of a
// binary that cannot prove it was not inlined, which includes go test's
// binaries (they have no DWARF). Call Main from TestMain, which reruns
// the tests in a binary with DWARF, or run them with -gcflags=all=-l; and
// mark the functions you patch //go:noinline.
//
// It owns the cleanup and scoping rules of patches made in tests. It must not
// reach the engine packages: every patch goes through registry.
package registrytest
