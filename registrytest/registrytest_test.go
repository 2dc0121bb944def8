package registrytest_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/registrytest"
)

type sized struct{ n int }

//go:noinline
func (s *sized) size(x int) int { return s.n * x }

//go:noinline
func level(x int) int { return x + len(strings.Repeat("a", x)) }

// TestSetGlobalUnwindsInOrder: stacked patches in one test and in a
// subtest; each cleanup restores the state before its own patch.
func TestSetGlobalUnwindsInOrder(t *testing.T) {
	orig := level(1)
	t.Run("outer", func(t *testing.T) {
		registrytest.SetGlobal(t, level, func(int) int { return 10 })
		registrytest.SetGlobal(t, level, func(int) int { return 20 })
		if got := level(1); got != 20 {
			t.Fatalf("two patches: %d, want 20", got)
		}
		t.Run("inner", func(t *testing.T) {
			registrytest.SetGlobal(t, level, func(int) int { return 30 })
			if got := level(1); got != 30 {
				t.Fatalf("inner: %d, want 30", got)
			}
		})
		if got := level(1); got != 20 {
			t.Fatalf("after the inner test: %d, want 20", got)
		}
		t.Cleanup(func() {
			// Cleanups run last first: the second patch is undone first.
			if got := level(1); got != 20 {
				t.Errorf("before the patches' cleanups: %d, want 20", got)
			}
		})
	})
	if got := level(1); got != orig {
		t.Fatalf("after the outer test: %d, want the original %d", got, orig)
	}
}

// TestMisuseFails: a refused patch fails the test with t.Fatalf naming the
// function and the reason, and patches nothing.
func TestMisuseFails(t *testing.T) {
	s := &sized{n: 2}
	for _, c := range []struct {
		name string
		set  func(t testing.TB)
		want []string
	}{
		{"method value", func(t testing.TB) { registrytest.SetGlobal(t, s.size, level) }, []string{"registrytest.SetGlobal", "size-fm", "method value"}},
		{"runtime", func(t testing.TB) { registrytest.SetGlobal(t, runtime.GC, runtime.Gosched) }, []string{"registrytest.SetGlobal", "runtime.GC", "Go runtime"}},
		{"nil impl", func(t testing.TB) { registrytest.SetGlobal(t, level, nil) }, []string{"registrytest.SetGlobal", "level", "nil"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ft := &exampleT{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.set(ft)
			}()
			<-done
			if len(ft.fatal) != 1 {
				t.Fatalf("Fatalf calls: %q", ft.fatal)
			}
			for _, w := range c.want {
				if !strings.Contains(ft.fatal[0], w) {
					t.Errorf("message %q does not name %q", ft.fatal[0], w)
				}
			}
			if level(1) != 2 {
				t.Errorf("a refused patch changed level")
			}
		})
	}
}
