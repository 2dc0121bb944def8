package registry_test

import (
	"io"
	"math"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// stormEnv is TestFlipStorm's weather: GOMAXPROCS 4, the CPU profiler and a
// GC every millisecond, until the returned func is called.
func stormEnv(t *testing.T) func() {
	procs := runtime.GOMAXPROCS(4)
	profiling := pprof.StartCPUProfile(io.Discard) == nil
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for tick := time.NewTicker(time.Millisecond); ; n++ {
			select {
			case <-stop:
				tick.Stop()
				done <- n
				return
			case <-tick.C:
				runtime.GC()
			}
		}
	}()
	return func() {
		close(stop)
		t.Logf("%d GC cycles forced", <-done)
		if profiling {
			pprof.StopCPUProfile()
		}
		runtime.GOMAXPROCS(procs)
	}
}

// TestGuardStorm is the flip storm for every kind of guard: callers in the
// guard's scope check every result while the scoped patch is set,
// retargeted and removed as fast as possible.
func TestGuardStorm(t *testing.T) {
	c := &counter{n: 4}
	a := makeAdder(5)
	li, lm := &list[int]{n: 1}, &list[myInt]{n: 2}
	lp, lp2 := &list[pt]{n: 4}, &list[pt2]{n: 5}
	shapes := []shape{
		{
			name: "goroutine-tree", tactic: "punned-jump",
			call: stormTree,
			set: func(which int) error {
				impl := func(x int) int { return -x }
				if which == 2 {
					impl = func(x int) int { return -x - 5000 }
				}
				return registry.SetWith(stormTree, impl, registry.ForGoroutine())
			},
			reset: func() error { return registry.ResetWith(stormTree, registry.ForGoroutine()) },
			want:  func(x int) [3]int { return [3]int{2*x + 9, -x, -x - 5000} },
		},
		{
			name: "receiver", tactic: "punned-jump",
			call: func(x int) int { return c.get(x) },
			set: func(which int) error {
				impl := func(_ *counter, x int) int { return -x }
				if which == 2 {
					impl = func(_ *counter, x int) int { return -x - 5000 }
				}
				return registry.SetWith((*counter).get, impl, registry.ForReceiver(c))
			},
			reset: func() error { return registry.ResetWith((*counter).get, registry.ForReceiver(c)) },
			want:  func(x int) [3]int { return [3]int{8 + x, -x, -x - 5000} },
		},
		{
			name: "instantiation", tactic: "",
			call:  func(x int) int { return double(x) },
			set:   setPair(double[int], func(x int) int { return -x }, func(x int) int { return -x - 5000 }),
			reset: func() error { return registry.Reset(double[int]) },
			want:  func(x int) [3]int { return [3]int{2 * x, -x, -x - 5000} },
		},
		{
			// A method of a generic type: the guard compares RBX. Every
			// call also checks that list[myInt], which shares the shape,
			// keeps its code.
			name: "method-instantiation", tactic: "",
			call: func(x int) int {
				if got := lm.size(7, x); got != 2*x+2 {
					return math.MinInt // wrong for every x
				}
				return li.size(7, x)
			},
			set: setPair((*list[int]).size,
				func(l *list[int], v, x int) int { return -(x*1000 + v*10 + l.n) },
				func(l *list[int], v, x int) int { return -(x*1000 + v*10 + l.n) - 5000 }),
			reset: func() error { return registry.Reset((*list[int]).size) },
			want:  func(x int) [3]int { return [3]int{2*x + 1, -(x*1000 + 71), -(x*1000 + 71) - 5000} },
		},
		{
			// The same with struct instantiations sharing a shape: pt's
			// patch, pt2's callers checked.
			name: "method-instantiation-struct", tactic: "",
			call: func(x int) int {
				if got := lp2.size(pt2{1, 2}, x); got != 2*x+5 {
					return math.MinInt
				}
				return lp.size(pt{1, 2}, x)
			},
			set: setPair((*list[pt]).size,
				func(l *list[pt], v pt, x int) int { return -(x*1000 + v.a*100 + v.b*10 + l.n) },
				func(l *list[pt], v pt, x int) int { return -(x*1000 + v.a*100 + v.b*10 + l.n) - 5000 }),
			reset: func() error { return registry.Reset((*list[pt]).size) },
			want:  func(x int) [3]int { return [3]int{2*x + 4, -(x*1000 + 124), -(x*1000 + 124) - 5000} },
		},
		{
			name: "closure", tactic: "punned-jump",
			call:  a,
			set:   setPair(a, func(x int) int { return -x }, func(x int) int { return -x - 5000 }),
			reset: func() error { return registry.Reset(a) },
			want:  func(x int) [3]int { return [3]int{2*x + 5, -x, -x - 5000} },
		},
	}
	defer stormEnv(t)()
	per := stormTotal(t) / 2 / time.Duration(len(shapes))
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			if s.name == "goroutine-tree" {
				// Join a tree before storm starts the callers, so they are in it.
				must(t, s.set(1))
				must(t, s.reset())
			}
			storm(t, s, per)
		})
	}
}
