package gomonkey_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/compat/gomonkey"
	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func greet(name string) string { return "hello " + strings.ToUpper(name) }

type counter struct{ n int }

//go:noinline
func (c counter) Value() int { return c.n + len(greet("")) }

func mustPanic(t *testing.T, want error, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, want) {
			t.Fatalf("panic %v, want an error wrapping %v", r, want)
		}
		var e *registry.Error
		if !errors.As(err, &e) {
			t.Fatalf("panic %T, want a *registry.Error", err)
		}
	}()
	f()
}

// TestResetRestoresPreviousState: each Reset restores what was there
// before its own patches, whatever order the Resets come in.
func TestResetRestoresPreviousState(t *testing.T) {
	a := func(string) string { return "a" }
	b := func(string) string { return "b" }
	for _, order := range []string{"last first", "first first"} {
		p1 := gomonkey.ApplyFunc(greet, a)
		p2 := gomonkey.ApplyFunc(greet, b)
		if g := greet("x"); g != "b" {
			t.Fatalf("%s: two patches: %q", order, g)
		}
		if order == "last first" {
			p2.Reset()
			if g := greet("x"); g != "a" {
				t.Fatalf("%s: after the later Reset: %q, want a", order, g)
			}
			p1.Reset()
		} else {
			p1.Reset()
			if g := greet("x"); g != "b" {
				t.Fatalf("%s: after the earlier Reset: %q, want b (the later patch stays)", order, g)
			}
			p2.Reset()
		}
		if g := greet("x"); g != "hello X" {
			t.Fatalf("%s: after both Resets: %q", order, g)
		}
	}
	p := gomonkey.ApplyFunc(greet, a)
	p.ApplyFunc(greet, b)
	p.Reset()
	p.Reset() // a second Reset does nothing
	if g := greet("x"); g != "hello X" {
		t.Fatalf("one Patches, two patches of one function, Reset: %q", g)
	}
}

func TestOriginRunsTheOriginal(t *testing.T) {
	p := gomonkey.ApplyFuncReturn(greet, "stub")
	defer p.Reset()
	var inside string
	p.Origin(func() { inside = greet("x") })
	if inside != "hello X" || greet("x") != "stub" {
		t.Fatalf("inside Origin %q, after %q", inside, greet("x"))
	}
}

// TestValueMethodThroughPointer: gomonkey would patch the (*T).M wrapper,
// which direct calls on values skip; the compat layer patches T.M.
func TestValueMethodThroughPointer(t *testing.T) {
	c := counter{n: 7}
	want := c.Value()
	p := gomonkey.ApplyMethod(&counter{}, "Value", func(c *counter) int { return -c.n })
	got := []int{c.Value(), (&c).Value()}
	p.Reset()
	if got[0] != -7 || got[1] != -7 || c.Value() != want {
		t.Fatalf("value call, pointer call = %v; after Reset %d", got, c.Value())
	}
}

// TestRefusalsPanic: what the engine refuses panics with its error, and
// nothing is patched.
func TestRefusalsPanic(t *testing.T) {
	c := counter{}
	mustPanic(t, registry.ErrMethodValue, func() { gomonkey.ApplyFunc(c.Value, func() int { return 0 }) })
	mustPanic(t, registry.ErrWrapper, func() {
		gomonkey.ApplyFunc((*counter).Value, func(*counter) int { return 0 })
	})
	mustPanic(t, registry.ErrNotEntry, func() {
		gomonkey.ApplyPrivateMethod(counter{}, "noSuchMethod", func(counter) int { return 0 })
	})
	if greet("x") != "hello X" {
		t.Fatal("a refused patch changed something")
	}
}

func TestTypeRulesPanicLikeGomonkey(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "are different") {
			t.Fatalf("panic %v", r)
		}
	}()
	gomonkey.ApplyFunc(greet, func(int) string { return "" })
}
