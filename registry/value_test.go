package registry_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func valueVictim(a int, s string) (int, error) { return a + len(s) + byNameTriple(0), nil }

// TestSetValueWithMakeFunc patches through the reflect-level API with a
// reflect.MakeFunc impl, calls the original through OriginalValue while
// redirected, and resets.
func TestSetValueWithMakeFunc(t *testing.T) {
	fn := reflect.ValueOf(valueVictim)
	var seen []int
	impl := reflect.MakeFunc(fn.Type(), func(in []reflect.Value) []reflect.Value {
		seen = append(seen, int(in[0].Int()))
		return []reflect.Value{reflect.ValueOf(-1), reflect.Zero(fn.Type().Out(1))}
	})
	must(t, registry.SetValue(fn, impl))
	if n, err := valueVictim(5, "ab"); n != -1 || err != nil {
		t.Fatalf("patched call = %d, %v", n, err)
	}
	orig, err := registry.OriginalValue(fn)
	must(t, err)
	if orig.Type() != fn.Type() {
		t.Fatalf("OriginalValue type %v", orig.Type())
	}
	out := orig.Call([]reflect.Value{reflect.ValueOf(5), reflect.ValueOf("ab")})
	if out[0].Int() != 7 {
		t.Fatalf("original through OriginalValue = %d, want 7", out[0].Int())
	}
	if o := orig.Interface().(func(int, string) (int, error)); func() int { n, _ := o(1, "x"); return n }() != 2 {
		t.Fatal("OriginalValue as a typed func")
	}
	must(t, registry.ResetValue(fn))
	if n, _ := valueVictim(5, "ab"); n != 7 {
		t.Fatalf("after ResetValue = %d", n)
	}
	if diff := cmp.Diff([]int{5}, seen); diff != "" {
		t.Errorf("impl saw (-want +got):\n%s", diff)
	}
}

func TestValueRefusals(t *testing.T) {
	fn := reflect.ValueOf(valueVictim)
	var nilFunc func(int, string) (int, error)
	other := reflect.ValueOf(strings.ToUpper)
	for _, c := range []struct {
		name string
		err  func() error
		want error
	}{
		{"invalid fn", func() error { return registry.SetValue(reflect.Value{}, fn) }, registry.ErrNil},
		{"invalid impl", func() error { return registry.SetValue(fn, reflect.Value{}) }, registry.ErrNil},
		{"non-func fn", func() error { return registry.SetValue(reflect.ValueOf(3), fn) }, registry.ErrNotFunc},
		{"non-func impl", func() error { return registry.SetValue(fn, reflect.ValueOf("x")) }, registry.ErrNotFunc},
		{"nil fn", func() error { return registry.SetValue(reflect.ValueOf(nilFunc), fn) }, registry.ErrNil},
		{"nil impl", func() error { return registry.SetValue(fn, reflect.ValueOf(nilFunc)) }, registry.ErrNil},
		{"types differ", func() error { return registry.SetValue(fn, other) }, registry.ErrTypeMismatch},
		{"method value fn", func() error {
			mv := reflect.ValueOf((&byNameT{}).get)
			return registry.SetValue(mv, reflect.ValueOf(byNameTriple))
		}, registry.ErrMethodValue},
		{"reset invalid", func() error { return registry.ResetValue(reflect.Value{}) }, registry.ErrNil},
		{"reset non-func", func() error { return registry.ResetValue(reflect.ValueOf(1)) }, registry.ErrNotFunc},
		{"original nil", func() error { _, err := registry.OriginalValue(reflect.ValueOf(nilFunc)); return err }, registry.ErrNil},
		{"original non-func", func() error { _, err := registry.OriginalValue(reflect.ValueOf(1.5)); return err }, registry.ErrNotFunc},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := registry.List()
			err := c.err()
			var e *registry.Error
			if !errors.Is(err, c.want) || !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error wrapping %v", err, c.want)
			}
			if diff := cmp.Diff(before, registry.List()); diff != "" {
				t.Errorf("List changed:\n%s", diff)
			}
			if n, _ := valueVictim(1, "x"); n != 2 {
				t.Errorf("victim changed: %d", n)
			}
		})
	}
}

// Promoted methods: (*Outer).Name and Outer.Name are compiler wrappers
// that call the embedded field's method.
type inner struct{ n int }

//go:noinline
func (i *inner) Name() string { return "inner" + strings.Repeat("!", i.n) }

//go:noinline
func (i inner) Size() int { return i.n + byNameTriple(1) }

// Tiny is small enough for the compiler to inline into the wrapper.
func (i *inner) Tiny() int { return i.n }

type outer struct {
	inner
	k int
}

type outerPtr struct{ *inner }

// TestPromotedMethodRefused: Switchboard refuses the wrapper of a promoted
// method and names the method with the body; it does not patch that body
// on the user's behalf, since every caller of the body shares it.
func TestPromotedMethodRefused(t *testing.T) {
	o := &outer{inner: inner{n: 1}}
	if o.Name() != "inner!" || o.Size() != 4 || (outerPtr{&inner{}}).Name() != "inner" || o.Tiny() != 1 {
		t.Fatal("victims")
	}
	for _, c := range []struct {
		err  func() error
		body string
	}{
		{func() error { return registry.Set((*outer).Name, func(*outer) string { return "" }) }, "registry_test.(*inner).Name"},
		{func() error { return registry.Set((*outer).Size, func(*outer) int { return 0 }) }, "registry_test.inner.Size"},
		{func() error { return registry.Set(outer.Size, func(outer) int { return 0 }) }, "registry_test.inner.Size"},
		{func() error { return registry.Set(outerPtr.Name, func(outerPtr) string { return "" }) }, "registry_test.(*inner).Name"},
		{func() error { return registry.Set((*inner).Size, func(*inner) int { return 0 }) }, "registry_test.inner.Size"},
		{func() error { return registry.Set((*outer).Tiny, func(*outer) int { return 0 }) }, "registry_test.(*inner).Tiny"},
	} {
		before := registry.List()
		err := c.err()
		if !errors.Is(err, registry.ErrWrapper) || !strings.Contains(err.Error(), "patch "+testPkg()+"."+strings.TrimPrefix(c.body, "registry_test.")) {
			t.Errorf("got %v; want ErrWrapper naming %s", err, c.body)
		}
		if diff := cmp.Diff(before, registry.List()); diff != "" {
			t.Errorf("List changed:\n%s", diff)
		}
	}
	// The body named in the message is the one to patch: it reaches the
	// calls through the wrapper too.
	must(t, registry.Set((*inner).Name, func(*inner) string { return "patched" }))
	got := o.Name()
	must(t, registry.Reset((*inner).Name))
	if got != "patched" {
		t.Fatalf("(*outer).Name after patching (*inner).Name = %q", got)
	}
}
