package registry_test

import (
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// stormTotal is how long TestFlipStorm runs over all shapes: 10 s, or
// SWITCHBOARD_STORM (a Go duration) for a longer soak.
func stormTotal(t *testing.T) time.Duration {
	if v := os.Getenv("SWITCHBOARD_STORM"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SWITCHBOARD_STORM=%q: %v", v, err)
		}
		return d
	}
	if testing.Short() {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// TestFlipStorm is docs/design.md section 8 over every shape: three goroutines
// call the victim and check each result is the original's or a
// replacement's, a goroutine runs the GC every millisecond, the CPU
// profiler samples, GOMAXPROCS is 4 (so goroutines are preempted), and the
// test patches, retargets and resets the victim as fast as it can.
func TestFlipStorm(t *testing.T) {
	all := shapes()
	// The standard prologue once more, patched in call mode.
	std := all[4]
	std.name, std.tactic = "stack-check-call-mode", "punned-jump"
	std.set = func(which int) error {
		impl := func(x int) int { return x + 5_000 }
		if which == 2 {
			impl = func(x int) int { return helper(x) * 3 }
		}
		return registry.SetWith(standard, impl, registry.WithMode(registry.CallMode))
	}
	all = append(all, std)
	// Replacements that call through to the original while it flips, and
	// callers that call the original directly.
	orig, err := registry.Original(standard)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, shape{
		name: "through-original", tactic: "punned-jump",
		call: func(x int) int {
			if orig(x) != 2*x+3 {
				return math.MinInt // never one of want's values
			}
			return standard(x)
		},
		set:   setPair(standard, func(x int) int { return orig(x) + 1_000_000 }, func(x int) int { return orig(x) * 2 }),
		reset: func() error { return registry.Reset(standard) },
		want:  func(x int) [3]int { return [3]int{2*x + 3, 2*x + 3 + 1_000_000, 4*x + 6} },
	})

	defer stormEnv(t)()
	per := stormTotal(t) / time.Duration(len(all))
	for _, s := range all {
		t.Run(s.name, func(t *testing.T) { storm(t, s, per) })
	}
}

func storm(t *testing.T, s shape, d time.Duration) {
	var (
		stop      atomic.Bool
		calls     atomic.Int64
		wrong     atomic.Int64
		seen      [3]atomic.Int64
		firstBad  atomic.Value
		callersWG sync.WaitGroup
	)
	for g := range 3 {
		callersWG.Add(1)
		go func() {
			defer callersWG.Done()
			var n int64
			var local [3]int64
			for i := g; !stop.Load(); i++ {
				x := i & 1023
				got, want := s.call(x), s.want(x)
				switch got {
				case want[0]:
					local[0]++
				case want[1]:
					local[1]++
				case want[2]:
					local[2]++
				default:
					if wrong.Add(1) == 1 {
						firstBad.Store([2]int{x, got})
					}
				}
				if n++; n%256 == 0 {
					flushSeen(&seen, &local)
				}
			}
			calls.Add(n)
			flushSeen(&seen, &local)
		}()
	}
	var flips int
	deadline := time.Now().Add(d)
	sawBoth := func() bool { return seen[0].Load() > 0 && seen[1].Load()+seen[2].Load() > 0 }
	for keepFlipping(deadline, sawBoth) {
		for _, step := range []func() error{func() error { return s.set(1) }, func() error { return s.set(2) }, s.reset} {
			if err := step(); err != nil {
				stop.Store(true)
				callersWG.Wait()
				t.Fatalf("after %d flips: %v", flips, err)
			}
			flips++
		}
	}
	stop.Store(true)
	callersWG.Wait()
	t.Logf("%s: %d flips, %d calls (original %d, first %d, second %d), %d wrong",
		s.name, flips, calls.Load(), seen[0].Load(), seen[1].Load(), seen[2].Load(), wrong.Load())
	if n := wrong.Load(); n > 0 {
		bad := firstBad.Load().([2]int)
		t.Fatalf("%d wrong results; first: call(%d) = %d, want one of %v", n, bad[0], bad[1], s.want(bad[0]))
	}
	if calls.Load() == 0 || flips == 0 {
		t.Fatalf("nothing happened: %d calls, %d flips", calls.Load(), flips)
	}
	// The storm must have seen the patch take effect, or it proves nothing.
	if seen[0].Load() == 0 || seen[1].Load()+seen[2].Load() == 0 {
		t.Fatalf("callers never saw both the original and a replacement")
	}
	if r := redirectOf(t, funcName(s)); r.Active {
		t.Fatalf("left redirected: %v", r)
	}
}

// flushSeen adds a caller's counts of each result kind to the shared ones,
// so that the patcher can see what the callers saw while they run.
func flushSeen(seen *[3]atomic.Int64, local *[3]int64) {
	for i := range local {
		seen[i].Add(local[i])
		local[i] = 0
	}
}

// keepFlipping reports whether a storm goes on: until its deadline, and
// then until the callers have seen what the storm must show (sawAll), for
// at most 20 s more on a machine too loaded to show it in time.
func keepFlipping(deadline time.Time, sawAll func() bool) bool {
	now := time.Now()
	return now.Before(deadline) || !sawAll() && now.Before(deadline.Add(20*time.Second))
}

// funcName maps a shape to its victim's name in List.
func funcName(s shape) string {
	return map[string]string{
		"leaf-1-byte": "leafRet", "leaf-3-byte": "leafZero", "leaf-4-byte": "leafInc", "leaf-5-byte": "leafField",
		"stack-check": "standard", "stack-check-call-mode": "standard", "through-original": "standard", "medium-frame": "mediumFrame",
		"huge-frame": "hugeFrame", "huge-frame-past-scratch": "hugeFrameHigh", "nop-first": "nopFirst", "push-rbp-first": "pushFirst", "method-via-interface": "Add",
		"tiny-wide": "(*flags).high", "tiny-method-add": "(*mocked).M", "tiny-less": "less", "tiny-nil-check": "(*nilable).ok", "tiny-load": "(*deep).n",
		"tiny-chain-transient": "(*flags8).transient", "tiny-chain-xlogue": "(*lico).xlogue",
		"goroutine-tree": "stormTree", "receiver": "(*counter).get", "instantiation": "double[go.shape.int]", "method-instantiation": "(*list[go.shape.int]).size",
		"method-instantiation-struct": "b int }]).size", "closure": "makeAdder.func1",
	}[s.name]
}
