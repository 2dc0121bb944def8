package registrytest

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/switchboard-go/switchboard/internal/layers"
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
	if f := runtime.FuncForPC(v.Pointer()); f != nil {
		return f.Name()
	}
	return v.Type().String()
}
