// Package registry is Switchboard's public API: Set redirects every call of
// a function to another func value, Reset undoes it, List reports what is
// redirected.
//
//	err := registry.Set(pkg.Compute, fastCompute)          // patch: one atomic code store
//	err = registry.Set(pkg.Compute, func(x int) int { ... }) // retarget: one atomic pointer store
//	err = registry.Reset(pkg.Compute)                        // original bytes back
//
// A patch can be scoped to some calls (see SetWith for the order in which
// overlapping patches apply):
//
//	err = registry.SetWith(time.Now, fakeNow, registry.ForGoroutine())     // this goroutine and those it starts
//	err = registry.SetWith((*pkg.Cache).Get, stub, registry.ForReceiver(c)) // calls on c only
//	err = registry.Set(pkg.Max[int], maxInt)                                // this instantiation only
//	err = registry.Set(counter, fakeCounter)                                // this closure instance only
//	err = registry.ResetWith(time.Now, registry.ForGoroutine())            // remove one scoped patch
//
// SetC, ResetC and OriginalC do the same for C and C++ functions (System V
// ABI) of the executable and of loaded shared objects, given C code
// pointers; LookupSymbol finds them by name, C++ by demangled name.
//
// Check and CheckC give Set's and SetC's policy on a function of a binary
// without patching anything: what `switchboard scan` reports.
//
// It owns the records of patched functions and the refusal rules: every
// error is an *Error wrapping one of the Err* sentinels, names the function
// and the reason, and leaves the program exactly as it was. Writers are
// serialized by one mutex; calls of patched functions never take it.
//
// It must not write code or relay pages itself (package dispatch does) or
// read binaries (package unwind does).
package registry
