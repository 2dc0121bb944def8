package registry_test

import (
	"testing"

	"github.com/switchboard-go/switchboard/registry"
)

// TestEvictedScoped scopes patches of evicted functions to one receiver:
// calls on another receiver fall through to the original body through the
// trampoline, which jumps back to the evicted instruction and so runs its
// stub.
func TestEvictedScoped(t *testing.T) {
	m1, m2 := &mocked{v: 1}, &mocked{v: 2}
	f1, f2 := &flags{b: 200}, &flags{b: 5}
	must(t, registry.SetWith((*mocked).M, func(t *mocked, x int) int { return -x }, registry.ForReceiver(m1)))
	defer registry.Reset((*mocked).M)
	must(t, registry.SetWith((*flags).high, func(f *flags) int32 { return 99 }, registry.ForReceiver(f1)))
	defer registry.Reset((*flags).high)
	if why := shapeCaveat(); why == "" {
		for _, name := range []string{"(*mocked).M", "(*flags).high"} {
			if r := redirectOf(t, name); r.Tactic != "evict-jump" {
				t.Errorf("%s: %v, want evict-jump", name, r)
			}
		}
	}
	for i := range 1000 {
		if got := m1.M(i); got != -i {
			t.Fatalf("m1.M(%d) = %d, want the scoped patch's %d", i, got, -i)
		}
		if got := m2.M(i); got != 2+i {
			t.Fatalf("m2.M(%d) = %d, want the original's %d", i, got, 2+i)
		}
		if got, want := f1.high(), int32(99); got != want {
			t.Fatalf("f1.high() = %d, want %d", got, want)
		}
		if got, want := f2.high(), int32(0); got != want {
			t.Fatalf("f2.high() = %d, want the original's %d", got, want)
		}
	}
}
