package registry_test

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/registry"
)

// originals gives, per shape of shapes(), the shape's call made through
// Original of its victim instead of the victim itself.
var originals = map[string]func() (func(x int) int, error){
	"leaf-1-byte": func() (func(int) int, error) { return wrap(registry.Original(leafRet)) },
	"leaf-3-byte": func() (func(int) int, error) { return wrap(registry.Original(leafZero)) },
	"leaf-4-byte": func() (func(int) int, error) { return wrap(registry.Original(leafInc)) },
	"leaf-5-byte": func() (func(int) int, error) {
		r := &rec{b: 17, n: 5}
		o, err := registry.Original(leafField)
		return func(x int) int { return o(r) + x }, err
	},
	"stack-check":             func() (func(int) int, error) { return wrap(registry.Original(standard)) },
	"medium-frame":            func() (func(int) int, error) { return wrap(registry.Original(mediumFrame)) },
	"huge-frame":              func() (func(int) int, error) { return wrap(registry.Original(hugeFrame)) },
	"huge-frame-past-scratch": func() (func(int) int, error) { return wrap(registry.Original(hugeFrameHigh)) },
	"nop-first": func() (func(int) int, error) {
		o, err := registry.Original(nopFirst)
		return func(x int) int { return o(x, 10) }, err
	},
	"push-rbp-first": func() (func(int) int, error) {
		o, err := registry.Original(pushFirst)
		return func(x int) int { return o() + x }, err
	},
	"method-via-interface": func() (func(int) int, error) {
		a := &acc{base: 1000}
		o, err := registry.Original((*acc).Add)
		return func(x int) int { return o(a, x) }, err
	},
	"tiny-method-add": func() (func(int) int, error) {
		m := &mocked{v: 100}
		o, err := registry.Original((*mocked).M)
		return func(x int) int { return o(m, x) }, err
	},
	"tiny-wide": func() (func(int) int, error) {
		fl := &flags{b: 200}
		o, err := registry.Original((*flags).high)
		return func(x int) int { return 1000*x + int(o(fl)) }, err
	},
	"tiny-less": func() (func(int) int, error) {
		o, err := registry.Original(less)
		return func(x int) int { return 10*x + b2i(o(x, x+1)) }, err
	},
	"tiny-load": func() (func(int) int, error) {
		dp := &deep{in: &deepInner{n: 300}}
		o, err := registry.Original((*deep).n)
		return func(x int) int { return x + o(dp) }, err
	},
	"tiny-nil-check": func() (func(int) int, error) {
		p := &nilable{n: 7}
		o, err := registry.Original((*nilable).ok)
		return func(x int) int { return 10*x + b2i(o(p)) }, err
	},
}

func wrap(f func(int) int, err error) (func(int) int, error) { return f, err }

// TestOriginalEveryShape calls every shape's victim through Original while
// it is redirected, on fresh goroutines (small stacks, so the larger frames
// grow them and restart at the patched entry), and expects the original's
// result every time.
func TestOriginalEveryShape(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			mk := originals[s.name]
			if mk == nil {
				t.Fatalf("no Original call for shape %s: add one to originals", s.name)
			}
			orig, err := mk()
			must(t, err)
			must(t, s.set(1))
			defer s.reset()
			for x := range 200 {
				done := make(chan int)
				go func() { done <- orig(x) }()
				if got, want := <-done, s.want(x)[0]; got != want {
					t.Fatalf("through Original on a fresh goroutine: f(%d) = %d, want the original's %d", x, got, want)
				}
				if got, want := s.call(x), s.want(x)[1]; got != want {
					t.Fatalf("redirected call: f(%d) = %d, want %d", x, got, want)
				}
			}
		})
	}
}

var bigRuns, bigReplaced atomic.Int64

// bigCounted has a 32 KiB frame, so that every call from a fresh goroutine
// grows the stack, and it counts its runs.
//
//go:noinline
func bigCounted(x int) int {
	var a [4096]int
	for i := range a {
		a[i] = i ^ x
	}
	bigRuns.Add(1)
	return a[x&4095] ^ x
}

// TestOriginalRunsOnceUnderStackGrowth: each call through Original of a
// large frame from a fresh goroutine runs the original body exactly once,
// and the replacement never, although the restart after morestack enters
// the patched entry.
func TestOriginalRunsOnceUnderStackGrowth(t *testing.T) {
	orig, err := registry.Original(bigCounted)
	must(t, err)
	must(t, registry.Set(bigCounted, func(x int) int { bigReplaced.Add(1); return -1 }))
	defer registry.Reset(bigCounted)
	bigRuns.Store(0)
	const n = 500
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if orig(i) != i&4095 {
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	if wrong.Load() != 0 || bigRuns.Load() != n || bigReplaced.Load() != 0 {
		t.Fatalf("%d calls: %d wrong, original ran %d times, replacement %d", n, wrong.Load(), bigRuns.Load(), bigReplaced.Load())
	}
}

//go:noinline
func twelve(a, b, c, d, e, f, g, h, i, j, k, l int) (int, int, int, int, int, int, int, int, int, int, string) {
	return a + l, b * k, c - j, d, e, f, g, h, i, a + b + c + d + e + f + g + h + i + j + k + l, "twelve"
}

//go:noinline
func floats(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q float64, s float32) (float64, float32, complex128) {
	return a + b + c + d + e + f + g + h + i + j + k + l + m + n + o + p + q, s * 2, complex(p, q)
}

// TestOriginalStackArgs: arguments and results passed on the stack (more
// than 9 integers, more than 15 floats) reach the original through the
// stub's copy, while the function is redirected and its replacement calls
// through, on fresh goroutines too.
func TestOriginalStackArgs(t *testing.T) {
	o12, err := registry.Original(twelve)
	must(t, err)
	must(t, registry.Set(twelve, func(a, b, c, d, e, f, g, h, i, j, k, l int) (int, int, int, int, int, int, int, int, int, int, string) {
		r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, s := o12(a, b, c, d, e, f, g, h, i, j, k, l)
		return r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 + 1000, s + "!"
	}))
	defer registry.Reset(twelve)
	check12 := func(r0, r1, r2, r8, r9 int, s string, bonus int, suffix string) {
		t.Helper()
		if r0 != 13 || r1 != 22 || r2 != -7 || r8 != 9 || r9 != 78+bonus || s != "twelve"+suffix {
			t.Fatalf("got %d %d %d .. %d %d %q", r0, r1, r2, r8, r9, s)
		}
	}
	r0, r1, r2, _, _, _, _, _, r8, r9, s := twelve(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	check12(r0, r1, r2, r8, r9, s, 1000, "!")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r0, r1, r2, _, _, _, _, _, r8, r9, s := o12(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
		check12(r0, r1, r2, r8, r9, s, 0, "")
	}()
	<-done

	of, err := registry.Original(floats)
	must(t, err)
	must(t, registry.Set(floats, func(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q float64, s float32) (float64, float32, complex128) {
		x, y, z := of(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, s)
		return -x, y, z
	}))
	defer registry.Reset(floats)
	x, y, z := floats(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 1.5)
	if x != -153 || y != 3 || z != complex(16, 17) {
		t.Fatalf("floats through Original: %v %v %v", x, y, z)
	}
}

// TestOriginalGoAndDefer: the original's func value started as a goroutine
// and deferred, with arguments, while the function is redirected.
func TestOriginalGoAndDefer(t *testing.T) {
	o, err := registry.Original(twelve)
	must(t, err)
	must(t, registry.Set(twelve, func(a, b, c, d, e, f, g, h, i, j, k, l int) (int, int, int, int, int, int, int, int, int, int, string) {
		panic("replacement ran")
	}))
	defer registry.Reset(twelve)
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); o(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) }()
		go o(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	}
	wg.Wait()
	func() {
		defer o(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	}()
	oc, err := registry.Original(bigCounted)
	must(t, err)
	bigRuns.Store(0)
	func() {
		defer oc(3)
		go oc(4)
	}()
	for bigRuns.Load() < 2 {
		runtime.Gosched()
	}
}

type node struct {
	pad [3]int
	v   int
}

// Val loads through its receiver first: mov rax, [rax+24].
//
//go:noinline
func (n *node) Val() int { return n.v }

// TestOriginalNilReceiver: the trampoline copies the load through the
// receiver; a nil receiver must give the ordinary nil-dereference panic,
// which the caller recovers, not a crash in the relay page.
func TestOriginalNilReceiver(t *testing.T) {
	orig, err := registry.Original((*node).Val)
	if why := shapeCaveat(); why != "" && errors.Is(err, registry.ErrUnpatchable) {
		t.Skipf("the victim's shape differs in this build (%s): %v", why, err)
	}
	must(t, err)
	must(t, registry.Set((*node).Val, func(n *node) int { return -1 }))
	defer registry.Reset((*node).Val)
	if got := orig(&node{v: 5}); got != 5 {
		t.Fatalf("orig(&node{5}) = %d", got)
	}
	for range 3 {
		var rerr runtime.Error
		func() {
			defer func() {
				e := recover()
				rerr, _ = e.(runtime.Error)
			}()
			orig(nil)
		}()
		if rerr == nil || !strings.Contains(rerr.Error(), "nil pointer dereference") {
			t.Fatalf("orig(nil) recovered %v, want a nil-dereference runtime error", rerr)
		}
	}
}

// TestOriginalStormThroughGrowth is the flip storm on a large frame whose
// callers and replacements call its Original from fresh goroutines, so
// that restarts after morestack meet every state of the patch.
func TestOriginalStormThroughGrowth(t *testing.T) {
	orig, err := registry.Original(hugeFrame)
	must(t, err)
	want0 := func(x int) int { return x ^ x&1023 }
	fresh := func(x int) int {
		done := make(chan int)
		go func() { done <- orig(x) }()
		return <-done
	}
	s := shape{
		name: "huge-frame", tactic: "prefixed-jump", // funcName maps it to hugeFrame
		call: func(x int) int {
			if fresh(x) != want0(x) {
				return math.MinInt
			}
			return hugeFrame(x)
		},
		set:   setPair(hugeFrame, func(x int) int { return fresh(x) + 1_000_000 }, func(x int) int { return orig(x) * 2 }),
		reset: func() error { return registry.Reset(hugeFrame) },
		want:  func(x int) [3]int { return [3]int{want0(x), want0(x) + 1_000_000, 2 * want0(x)} },
	}
	defer stormEnv(t)()
	storm(t, s, stormTotal(t)/5)
}

func TestOriginalReturnPC(t *testing.T) {
	pc, entry := switchboard.OriginalReturnPC(), switchboard.OriginalEntryPC()
	if pc <= entry || pc > entry+256 {
		t.Fatalf("OriginalReturnPC %#x outside the stub at %#x", pc, entry)
	}
}

// TestEvictedNilCheck runs an eviction stub's nil check in this process:
// (*deep).n's load at +3 is evicted, and Original's trampoline copies only
// the first instruction and jumps back to +3, into the eviction jump and
// its stub. A valid pointer loads through the stub; a nil one must reach
// nilFault and give the ordinary nil-dereference panic, not a fault in the
// relay page (which would kill the process).
func TestEvictedNilCheck(t *testing.T) {
	if why := shapeCaveat(); why != "" {
		t.Skip("the victim's shape differs in this build: " + why)
	}
	must(t, registry.Set((*deep).n, func(d *deep) int { return -1 }))
	defer registry.Reset((*deep).n)
	if r := redirectOf(t, "(*deep).n"); r.Tactic != "evict-jump" {
		t.Fatalf("(*deep).n patched with %s, want evict-jump", r.Tactic)
	}
	orig, err := registry.Original((*deep).n)
	must(t, err)
	if got := (&deep{in: &deepInner{n: 7}}).n(); got != -1 {
		t.Fatalf("patched call = %d, want the replacement's -1", got)
	}
	if got := orig(&deep{in: &deepInner{n: 7}}); got != 7 {
		t.Fatalf("orig through the stub = %d, want 7", got)
	}
	for range 3 {
		var rerr runtime.Error
		var via []string
		func() {
			defer func() {
				e := recover()
				rerr, _ = e.(runtime.Error)
				// The frames between the panic and here: the fault must
				// be nilFault's, reached from the stub's check. (Without
				// the check the runtime would take the relay-page fault
				// for a call to non-code and panic from the caller too.)
				pcs := make([]uintptr, 32)
				frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
				for f, more := frames.Next(); more; f, more = frames.Next() {
					via = append(via, f.Function)
				}
			}()
			orig(&deep{})
		}()
		if rerr == nil || !strings.Contains(rerr.Error(), "nil pointer dereference") {
			t.Fatalf("orig(&deep{}) recovered %v, want a nil-dereference runtime error", rerr)
		}
		if !slices.ContainsFunc(via, func(f string) bool { return strings.HasSuffix(f, "switchboard.nilFault") }) {
			t.Fatalf("the panic did not come through nilFault: %v", via)
		}
	}
}
