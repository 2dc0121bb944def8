package registry_test

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

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
	// A real closure is a closure instance: patched for that instance
	// (or refused as inlined), never taken for a method.
	err := registry.Set(closure, func(x int) int { return -x })
	switch {
	case errors.Is(err, registry.ErrInlined):
	case err != nil:
		t.Errorf("closure: %v", err)
	default:
		defer registry.Reset(closure)
		scoped := false
		for _, r := range registry.List() {
			scoped = scoped || strings.HasPrefix(r.Scope, "closure")
		}
		if !scoped {
			t.Errorf("closure: List has no closure-scoped patch: %v", registry.List())
		}
	}
}

type ring struct{ k int }

//go:noinline
func (r *ring) step(x int) int { return r.k + twice(x) }

//go:noinline
func hop(x int) int { return twice(x) + 1 }

// TestCycleThroughMethodValue: hop is redirected to the method value r.step,
// whose wrapper calls (*ring).step; redirecting (*ring).step to hop would
// make calls cycle. The func value of hop is given (*ring).step's type by
// unsafe, as reflect- or unsafe-built func values can be.
func TestCycleThroughMethodValue(t *testing.T) {
	r := &ring{k: 1}
	must(t, registry.Set(hop, r.step))
	defer registry.Reset(hop)
	if got := hop(2); got != 5 {
		t.Fatalf("hop(2) redirected to r.step: %d, want 5", got)
	}
	h := hop
	forged := *(*func(*ring, int) int)(unsafe.Pointer(&h))
	err := registry.Set((*ring).step, forged)
	if !errors.Is(err, registry.ErrCycle) || !strings.Contains(err.Error(), "step-fm") {
		t.Fatalf("got %v, want ErrCycle through the method value", err)
	}
	if got := r.step(2); got != 5 {
		t.Fatalf("(*ring).step changed after a refused Set: %d", got)
	}
}

//go:noinline
func installVictim(x int) int { return twice(x) + 7 }

// TestRefusedFirstSetKeepsList: a first Set whose relay site fails to
// install is refused and leaves List, the code and the behaviour as they
// were; the next Set works.
func TestRefusedFirstSetKeepsList(t *testing.T) {
	before := registry.List()
	code := snapshot(installVictim)
	restore := registry.FailInstall(registry.ErrNoRelay)
	err := registry.Set(installVictim, func(int) int { return 0 })
	restore()
	if !errors.Is(err, registry.ErrNoRelay) {
		t.Fatalf("Set with a failing install: %v", err)
	}
	if diff := cmp.Diff(before, registry.List()); diff != "" {
		t.Errorf("List changed (-before +after):\n%s", diff)
	}
	if snapshot(installVictim) != code || installVictim(1) != 9 {
		t.Fatal("code or behaviour changed")
	}
	must(t, registry.Set(installVictim, func(int) int { return 0 }))
	defer registry.Reset(installVictim)
	if installVictim(1) != 0 {
		t.Fatal("Set after the failure did not take effect")
	}
}
