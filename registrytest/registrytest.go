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
package registrytest

import (
	"reflect"
	"testing"

	"github.com/switchboard-go/switchboard/internal/layers"
	"github.com/switchboard-go/switchboard/unwind"
)

// Set redirects the calls of fn made by the calling test's goroutine tree
// to impl until the test ends (see the package documentation for what
// the goroutine tree is).
func Set[F any](t testing.TB, fn, impl F) {
	t.Helper()
	tg, err := scoped(t, reflect.ValueOf(fn))
	if err != nil {
		t.Fatalf("registrytest.Set(%s): %v", name(fn), err)
	}
	push(t, "Set", tg, fn, impl)
}

// SetGlobal redirects every call of fn, from any goroutine, to impl until
// the test ends.
func SetGlobal[F any](t testing.TB, fn, impl F) {
	t.Helper()
	push(t, "SetGlobal", layers.Target{Fn: reflect.ValueOf(fn)}, fn, impl)
}

func push[F any](t testing.TB, op string, tg layers.Target, fn, impl F) {
	t.Helper()
	l, err := layers.Push(t, tg, reflect.ValueOf(impl))
	if err != nil {
		t.Fatalf("registrytest.%s(%s): %v", op, name(fn), err)
	}
	t.Cleanup(func() {
		if err := l.Pop(); err != nil {
			t.Errorf("registrytest.%s(%s): restoring the previous state: %v", op, name(fn), err)
		}
	})
}

// name names fn for messages, whatever was passed.
func name(fn any) string {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return reflect.TypeOf(fn).String()
	}
	return unwind.Name(v.Pointer())
}
