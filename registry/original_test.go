package registry_test

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

func TestOriginalCallsThrough(t *testing.T) {
	type fn = func(int) int
	r := &rec{b: 17, n: 5}
	a := &acc{base: 1000}
	cases := []struct {
		name   string
		victim fn
		want   func(x int) int
	}{
		{"leaf-1-byte ret", leafRet, func(x int) int { return x }},
		{"leaf-4-byte inc", leafInc, func(x int) int { return x + 1 }},
		{"stack check", standard, func(x int) int { return 2*x + 3 }},
		{"medium frame lea", mediumShort, func(x int) int { return x + 1 }},
		{"huge frame", hugeFrame, func(x int) int { return x ^ x&1023 }},
		{"huge frame, past-scratch", hugeFrameHigh, func(x int) int { return x ^ x&1023 + 2 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := registry.Original(tc.victim)
			if why := shapeCaveat(); why != "" && errors.Is(err, registry.ErrUnpatchable) {
				t.Skipf("the victim's shape differs in this build (%s): %v", why, err)
			}
			must(t, err)
			must(t, registry.Set(tc.victim, func(x int) int { return orig(x) + 1_000_000 }))
			for x := range 50 {
				if got, want := tc.victim(x), tc.want(x)+1_000_000; got != want {
					t.Fatalf("redirected through Original: f(%d) = %d, want %d", x, got, want)
				}
				if got := orig(x); got != tc.want(x) {
					t.Fatalf("Original(%d) = %d, want %d", x, got, tc.want(x))
				}
			}
			must(t, registry.Reset(tc.victim))
			if got := orig(7); got != tc.want(7) {
				t.Fatalf("Original after Reset = %d, want %d", got, tc.want(7))
			}
			again, err := registry.Original(tc.victim)
			must(t, err)
			if again(7) != orig(7) {
				t.Fatal("a second Original differs")
			}
		})
	}
	// Shapes whose copy needs two instructions: nop first, push rbp first.
	origNop, err := registry.Original(nopFirst)
	must(t, err)
	must(t, registry.Set(nopFirst, func(x, y int) int { return origNop(x, y) * 2 }))
	if got := nopFirst(3, 4); got != 14 {
		t.Fatalf("nopFirst through Original = %d", got)
	}
	must(t, registry.Reset(nopFirst))
	origPush, err := registry.Original(pushFirst)
	must(t, err)
	must(t, registry.Set(pushFirst, func() int { return origPush() + 1 }))
	if got := pushFirst(); got != 42 {
		t.Fatalf("pushFirst through Original = %d", got)
	}
	must(t, registry.Reset(pushFirst))
	origAdd, err := registry.Original((*acc).Add)
	must(t, err)
	must(t, registry.Set((*acc).Add, func(a *acc, x int) int { return -origAdd(a, x) }))
	var iface adder = a
	if got := iface.Add(1); got != -1002 {
		t.Fatalf("method through Original = %d", got)
	}
	must(t, registry.Reset((*acc).Add))
	_ = r
}

// mediumShort has a frame over 128 bytes (lea r12,[rsp-N] prologue) and a
// body short enough for its stack-growth restart to be a 2-byte jmp that
// the trampoline can widen.
//
//go:noinline
func mediumShort(x int) int {
	var a [24]int
	a[x&7] = x
	return a[x&7] + helper(1)/2
}

// TestOriginalGrowsStack calls the original of a 16 KiB frame from fresh
// goroutines, whose stacks are smaller, while another goroutine keeps
// redirecting and resetting the function. The original must grow the
// stack and run once, never restarting at the patched entry (which would
// run the replacement).
func TestOriginalGrowsStack(t *testing.T) {
	orig, err := registry.Original(hugeFrame)
	must(t, err)
	var replaced atomic.Int64
	stop := make(chan struct{})
	flipped := make(chan int)
	go func() {
		n := 0
		defer func() { flipped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := registry.Set(hugeFrame, func(x int) int { replaced.Add(1); return -1 }); err != nil {
				t.Error(err)
				return
			}
			if err := registry.Reset(hugeFrame); err != nil {
				t.Error(err)
				return
			}
			n += 2
		}
	}()
	for i := range 2000 {
		done := make(chan int)
		go func() { done <- orig(i) }()
		if got, want := <-done, i^i&1023; got != want {
			close(stop)
			t.Fatalf("Original(%d) on a fresh goroutine = %d, want %d", i, got, want)
		}
	}
	close(stop)
	t.Logf("2000 calls of the original on fresh goroutines during %d flips", <-flipped)
	if n := replaced.Load(); n != 0 {
		t.Fatalf("the replacement ran %d times during calls of the original", n)
	}
}

func TestOriginalRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   func() error
		want  error
		shape bool // depends on the prologue the compiler emits
	}{
		{"13 [4]string: 832 stack bytes, over the stub's frame", func() error { _, err := registry.Original(manyStrings); return err }, registry.ErrUnpatchable, false},
		{"closure", func() error { _, err := registry.Original(func(int) int { return 0 }); return err }, registry.ErrClosure, false},
		{"nil", func() error { _, err := registry.Original[func()](nil); return err }, registry.ErrNil, false},
		{"not a func type", func() error { _, err := registry.Original[any](leafInc); return err }, registry.ErrNotFunc, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if why := shapeCaveat(); tc.shape && why != "" {
				t.Skip("the victim's shape differs in this build: " + why)
			}
			err := tc.err()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

//go:noinline
func manyStrings(a, b, c, d, e, f, g, h, i, j, k, l, m [4]string) int { return len(a[0]) + len(m[1]) }

var ticks atomic.Int64

//go:noinline
func tick() { ticks.Add(1) }

// TestOriginalAsGoroutine starts goroutines on the original itself, so that
// goroutines waiting to run have the original's func value as their start
// PC while the garbage collector scans their stacks.
func TestOriginalAsGoroutine(t *testing.T) {
	orig, err := registry.Original(tick)
	if why := shapeCaveat(); why != "" && errors.Is(err, registry.ErrUnpatchable) {
		t.Skipf("the victim's shape differs in this build (%s): %v", why, err)
	}
	must(t, err)
	must(t, registry.Set(tick, func() {}))
	defer registry.Reset(tick)
	const n = 20_000
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); orig() }() // keeps count
		go orig()
		if i%500 == 0 {
			runtime.GC()
		}
	}
	wg.Wait()
	for ticks.Load() < 2*n {
		runtime.Gosched()
	}
	tick() // redirected: does not count
	time.Sleep(10 * time.Millisecond)
	if got := ticks.Load(); got != 2*n {
		t.Fatalf("%d ticks, want %d", got, 2*n)
	}
}
