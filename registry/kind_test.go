package registry_test

import (
	"errors"
	"testing"

	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func twice(x int) int { return 2 * x }

// class has methods named like the compiler's closures. They call twice to
// get a stack-check prologue (a tiny leaf may have no relay window).
type class struct{ v int }

//go:noinline
func (c *class) func1(x int) int { return c.v + twice(x) }

type plain struct{ v int }

//go:noinline
func (p plain) func1(x int) int { return p.v * twice(x) }

//go:noinline
func (p plain) other(x int) int { return p.v - twice(x) }

// TestMethodNamedLikeClosure: (*class).func1 and plain.func1 are methods,
// patchable; a real closure is still refused.
func TestMethodNamedLikeClosure(t *testing.T) {
	c := &class{v: 1}
	must(t, registry.Set((*class).func1, func(c *class, x int) int { return -x }))
	if got := c.func1(5); got != -5 {
		t.Errorf("(*class).func1 after Set: %d", got)
	}
	must(t, registry.Reset((*class).func1))
	_ = plain{}.other(1)
	must(t, registry.Set(plain.func1, func(p plain, x int) int { return -x }))
	if got := (plain{v: 2}).func1(5); got != -5 {
		t.Errorf("plain.func1 after Set: %d", got)
	}
	must(t, registry.Reset(plain.func1))
	k := 3
	closure := func(x int) int { return x + k }
	if err := registry.Set(closure, closure); !errors.Is(err, registry.ErrClosure) {
		t.Errorf("closure: %v, want ErrClosure", err)
	}
}
