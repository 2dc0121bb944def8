package registry_test

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-go/switchboard/registry"
)

// Batch victims: the standard stack-check prologue, one per function so
// that batches write several quadwords, most on one page.

//go:noinline
func bv0(x int) int { return helper(x) + 10 }

//go:noinline
func bv1(x int) int { return helper(x) + 11 }

//go:noinline
func bv2(x int) int { return helper(x) + 12 }

//go:noinline
func bv3(x int) int { return helper(x) + 13 }

//go:noinline
func bv4(x int) int { return helper(x) + 14 }

//go:noinline
func bv5(x int) int { return helper(x) + 15 }

var batchVictims = []func(int) int{bv0, bv1, bv2, bv3, bv4, bv5}

// victimsOut calls every victim with x.
func victimsOut(x int) []int {
	out := make([]int, len(batchVictims))
	for i, f := range batchVictims {
		out[i] = f(x)
	}
	return out
}

func victimsCode() [][8]byte {
	out := make([][8]byte, len(batchVictims))
	for i, f := range batchVictims {
		out[i] = snapshot(f)
	}
	return out
}

func TestBatchCommitUndo(t *testing.T) {
	// bv1 is redirected before the batch: Undo must bring that back.
	must(t, registry.Set(bv1, func(x int) int { return -1 }))
	defer registry.Reset(bv1)
	code0, list0 := victimsCode(), registry.List()

	b := registry.NewBatch()
	for i, f := range batchVictims {
		must(t, registry.Stage(b, f, func(x int) int { return 1000*(i+1) + x }))
	}
	must(t, registry.Stage(b, bv5, bv5)) // staging fn again replaces: bv5 stays the original
	if b.Len() != len(batchVictims) {
		t.Fatalf("Len = %d, want %d", b.Len(), len(batchVictims))
	}
	if got, want := victimsOut(1), []int{12, -1, 14, 15, 16, 17}; !cmp.Equal(got, want) {
		t.Fatalf("staging changed behaviour: %v, want %v", got, want)
	}
	must(t, b.Commit())
	if got, want := victimsOut(1), []int{1001, 2001, 3001, 4001, 5001, 17}; !cmp.Equal(got, want) {
		t.Fatalf("after Commit: %v, want %v", got, want)
	}
	for i, name := range []string{"bv0", "bv1", "bv2", "bv3", "bv4"} {
		r := redirectOf(t, name)
		if !r.Active || r.Scope != "global" || r.SetAt.IsZero() {
			t.Errorf("%s: %+v", name, r)
		}
		if i == 1 && r.Retargets != 1 {
			t.Errorf("bv1 was retargeted by the batch, List says %d retargets", r.Retargets)
		}
	}
	if err := b.Commit(); !errors.Is(err, registry.ErrBatchState) {
		t.Errorf("second Commit: %v, want ErrBatchState", err)
	}
	must(t, b.Undo())
	if got, want := victimsOut(1), []int{12, -1, 14, 15, 16, 17}; !cmp.Equal(got, want) {
		t.Fatalf("after Undo: %v, want %v", got, want)
	}
	if diff := cmp.Diff(code0, victimsCode()); diff != "" {
		t.Errorf("Undo left code changed:\n%s", diff)
	}
	// Undo is a state change too: List reflects it, apart from history.
	strip := func(rs []registry.Redirect) []registry.Redirect {
		var out []registry.Redirect
		for _, r := range rs {
			if r.Active || !strings.Contains(r.Func, ".bv") {
				r.SetAt, r.Retargets = time.Time{}, 0
				out = append(out, r)
			}
		}
		return out
	}
	if diff := cmp.Diff(strip(list0), strip(registry.List())); diff != "" {
		t.Errorf("List after Undo (-before +after):\n%s", diff)
	}
	if err := b.Undo(); !errors.Is(err, registry.ErrBatchState) {
		t.Errorf("second Undo: %v, want ErrBatchState", err)
	}
}

func TestBatchStageRefusals(t *testing.T) {
	_ = usesSmallInlined([]int{1})
	k := 3
	closure := func(x int) int { return x + k }
	b := registry.NewBatch()
	cases := []struct {
		name string
		err  error
		want error
		fn   string
	}{
		{"closure", registry.Stage(b, closure, bv0), registry.ErrClosure, "TestBatchStageRefusals.func1"},
		{"inlined", registry.Stage(b, smallInlined, bv0), registry.ErrInlined, "smallInlined"},
		{"protected", registry.Stage(b, runtime.NumCPU, runtime.NumCPU), registry.ErrProtected, "runtime.NumCPU"},
		{"nil impl", registry.Stage(b, bv0, nil), registry.ErrNil, "bv0"},
		{"nil batch", registry.Stage(nil, bv0, bv1), registry.ErrBatchState, "<nil batch>"},
	}
	for _, tc := range cases {
		var re *registry.Error
		if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &re) || re.Op != "Stage" || !strings.Contains(tc.err.Error(), tc.fn) {
			t.Errorf("%s: got %v, want a Stage *Error naming %s wrapping %v", tc.name, tc.err, tc.fn, tc.want)
		}
	}
	if b.Len() != 0 {
		t.Errorf("refused Stages staged %d functions", b.Len())
	}
	must(t, registry.NewBatch().Commit()) // an empty batch commits
}

// TestBatchCommitRefused: a batch with refused functions fails Commit,
// names every one of them, and changes nothing, for good functions in the
// same batch too.
func TestBatchCommitRefused(t *testing.T) {
	must(t, registry.SetWith(bv4, func(x int) int { return -4 }, registry.WithMode(registry.CallMode)))
	defer registry.Reset(bv4)
	type refusal struct {
		fn   string
		want error
	}
	cases := []struct {
		name  string
		stage func(b *registry.Batch) error
		want  []refusal
		shape bool
	}{
		{"cycle", func(b *registry.Batch) error {
			return errors.Join(registry.Stage(b, bv0, bv2), registry.Stage(b, bv1, bv3), registry.Stage(b, bv2, bv0))
		}, []refusal{{"bv0", registry.ErrCycle}, {"bv2", registry.ErrCycle}}, false},
		{"mode conflict", func(b *registry.Batch) error {
			return errors.Join(registry.Stage(b, bv0, bv1), registry.Stage(b, bv4, bv3))
		}, []refusal{{"bv4", registry.ErrModeConflict}}, false},
		{"stage refusals ignored", func(b *registry.Batch) error {
			k := 2
			_ = registry.Stage(b, func(x int) int { return x + k }, bv1)
			_ = registry.Stage(b, smallInlined, bv1)
			_ = registry.Stage(b, runtime.NumGoroutine, runtime.NumCPU)
			return errors.Join(registry.Stage(b, bv0, bv1), registry.Stage(b, bv2, bv3))
		}, []refusal{{"TestBatchCommitRefused.func", registry.ErrClosure}, {"smallInlined", registry.ErrInlined}, {"runtime.NumGoroutine", registry.ErrProtected}}, false},
		{"no relay and cycle", func(b *registry.Batch) error {
			return errors.Join(registry.Stage(b, bv0, bv1), registry.Stage(b, residue, func() {}),
				registry.Stage(b, bv3, bv5), registry.Stage(b, bv5, bv3))
		}, []refusal{{"residue", registry.ErrNoRelay}, {"bv3", registry.ErrCycle}, {"bv5", registry.ErrCycle}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if why := shapeCaveat(); tc.shape && why != "" {
				t.Skip("the victim's shape differs in this build: " + why)
			}
			b := registry.NewBatch()
			must(t, tc.stage(b))
			list0, code0, out0 := registry.List(), victimsCode(), victimsOut(2)
			codeResidue := snapshot(residue)
			err := b.Commit()
			t.Log(err)
			var re *registry.Error
			var be *registry.BatchError
			if !errors.As(err, &re) || re.Op != "Commit" || !errors.As(err, &be) {
				t.Fatalf("got %v (%T), want an *Error wrapping a *BatchError", err, err)
			}
			if len(be.Errs) != len(tc.want) {
				t.Errorf("%d refusals, want %d", len(be.Errs), len(tc.want))
			}
			for _, w := range tc.want {
				if !errors.Is(err, w.want) || !strings.Contains(re.Func, w.fn) {
					t.Errorf("error does not name %s with %v", w.fn, w.want)
				}
			}
			if diff := cmp.Diff(list0, registry.List()); diff != "" {
				t.Errorf("List changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(code0, victimsCode()); diff != "" || snapshot(residue) != codeResidue {
				t.Errorf("code changed:\n%s", diff)
			}
			if diff := cmp.Diff(out0, victimsOut(2)); diff != "" {
				t.Errorf("behaviour changed:\n%s", diff)
			}
			if err := b.Undo(); !errors.Is(err, registry.ErrBatchState) {
				t.Errorf("Undo of a refused batch: %v", err)
			}
		})
	}
}

// TestBatchFlipStorm is the flip storm for batches: goroutines call every
// victim and check that each result is that victim's original or its
// replacement's, while GC runs every millisecond, the CPU profiler samples
// and GOMAXPROCS is 4; the test commits and undoes a batch over all the
// victims as fast as it can, alternating two sets of replacements.
func TestBatchFlipStorm(t *testing.T) {
	d := stormTotal(t) / 4
	// Plan every victim before the clock starts: a first commit pays for
	// planning, under -race for most of a short storm.
	warm := registry.NewBatch()
	for _, f := range batchVictims {
		must(t, registry.Stage(warm, f, func(x int) int { return x }))
	}
	must(t, warm.Commit())
	must(t, warm.Undo())
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		defer pprof.StopCPUProfile()
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}()
	// want[i](x): victim i's original, then replacements 1 and 2.
	want := func(i, x int) [3]int { return [3]int{2*x + 10 + i, 1000*(i+1) + x, -(1000*(i+1) + x)} }
	var calls, wrong atomic.Int64
	var seen [3]atomic.Int64
	var firstBad atomic.Value
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			var local [3]int64
			for j := g; !stop.Load(); j++ {
				x := j & 1023
				for i, f := range batchVictims {
					got, w := f(x), want(i, x)
					switch got {
					case w[0]:
						local[0]++
					case w[1]:
						local[1]++
					case w[2]:
						local[2]++
					default:
						if wrong.Add(1) == 1 {
							firstBad.Store(fmt.Sprintf("bv%d(%d) = %d, want one of %v", i, x, got, w))
						}
					}
					n++
				}
				if j%64 == 0 {
					flushSeen(&seen, &local)
				}
			}
			calls.Add(n)
			flushSeen(&seen, &local)
		}()
	}
	var flips int
	var err error
	sawAll := func() bool { return seen[0].Load() > 0 && seen[1].Load() > 0 && seen[2].Load() > 0 }
	for deadline := time.Now().Add(d); err == nil && keepFlipping(deadline, sawAll); flips++ {
		b := registry.NewBatch()
		for i, f := range batchVictims {
			impl := func(x int) int { return 1000*(i+1) + x }
			if flips%2 == 1 {
				impl = func(x int) int { return -(1000*(i+1) + x) }
			}
			if err = registry.Stage(b, f, impl); err != nil {
				break
			}
		}
		if err == nil {
			err = b.Commit()
		}
		if err == nil {
			err = b.Undo()
		}
	}
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("after %d flips: %v", flips, err)
	}
	t.Logf("%d commit+undo pairs, %d calls (original %d, first %d, second %d), %d wrong",
		flips, calls.Load(), seen[0].Load(), seen[1].Load(), seen[2].Load(), wrong.Load())
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d wrong results; first: %v", n, firstBad.Load())
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 || seen[2].Load() == 0 {
		t.Fatal("callers never saw the original and both replacements")
	}
	for _, name := range []string{"bv0", "bv1", "bv2", "bv3", "bv4", "bv5"} {
		if r := redirectOf(t, name); r.Active {
			t.Errorf("left redirected: %v", r)
		}
	}
}

// TestBatchUndoRestoresCallMode: a batch that resets a function redirected
// in call mode; Undo brings back the call-mode redirect and its target.
func TestBatchUndoRestoresCallMode(t *testing.T) {
	must(t, registry.SetWith(bv3, func(x int) int { return -3 }, registry.WithMode(registry.CallMode)))
	defer registry.Reset(bv3)
	b := registry.NewBatch()
	must(t, registry.Stage(b, bv3, bv3))
	must(t, registry.Stage(b, bv2, func(x int) int { return -2 }))
	must(t, b.Commit())
	if bv3(1) != 15 || bv2(1) != -2 || redirectOf(t, "bv3").Active {
		t.Fatalf("after Commit: bv3(1) = %d, bv2(1) = %d, %v", bv3(1), bv2(1), redirectOf(t, "bv3"))
	}
	must(t, b.Undo())
	if r := redirectOf(t, "bv3"); bv3(1) != -3 || bv2(1) != 14 || !r.Active || r.Mode != "call" {
		t.Fatalf("after Undo: bv3(1) = %d, bv2(1) = %d, %v", bv3(1), bv2(1), r)
	}
}

// snapshot16 is the first 16 bytes of fn's code: a wide eviction writes
// both quadwords.
func snapshot16[F any](fn F) [16]byte {
	e := any(fn)
	fv := (*[2]unsafe.Pointer)(unsafe.Pointer(&e))[1]
	return *(*[16]byte)(*(*unsafe.Pointer)(fv))
}

// TestBatchEvictions commits and undoes a batch of evicted functions (the
// stubs go in with the sites; a wide one is an octoword swap among the
// quadwords), twice, and checks calls, calls through Original (which run
// the stubs), List and the code after each step.
func TestBatchEvictions(t *testing.T) {
	m, fl := &mocked{v: 100}, &flags{b: 200}
	code0 := [][16]byte{snapshot16((*mocked).M), snapshot16(less), snapshot16((*flags).high), snapshot16(leafInc)}
	out := func() []int { return []int{m.M(1), b2i(less(1, 2)), int(fl.high()), leafInc(1)} }
	for round := range 2 {
		b := registry.NewBatch()
		must(t, registry.Stage(b, (*mocked).M, func(t *mocked, x int) int { return -x }))
		must(t, registry.Stage(b, less, func(a, b int) bool { return a > b }))
		must(t, registry.Stage(b, (*flags).high, func(f *flags) int32 { return 9 }))
		must(t, registry.Stage(b, leafInc, func(x int) int { return 40 + x }))
		must(t, b.Commit())
		if got, want := out(), []int{-1, 0, 9, 41}; !cmp.Equal(got, want) {
			t.Fatalf("round %d, after Commit: %v, want %v", round, got, want)
		}
		// Original's trampoline copies the first instruction and jumps
		// back to the evicted one: through the stub the batch wrote.
		om, err1 := registry.Original((*mocked).M)
		ol, err2 := registry.Original(less)
		oh, err3 := registry.Original((*flags).high)
		must(t, errors.Join(err1, err2, err3))
		if got, want := []int{om(m, 1), b2i(ol(1, 2)), int(oh(fl))}, []int{101, 1, 128}; !cmp.Equal(got, want) {
			t.Fatalf("round %d, through Original: %v, want %v", round, got, want)
		}
		if why := shapeCaveat(); why == "" {
			for _, name := range []string{"(*mocked).M", "less", "(*flags).high"} {
				if r := redirectOf(t, name); r.Tactic != "evict-jump" || !r.Active {
					t.Errorf("%s: %v, want active evict-jump", name, r)
				}
			}
		}
		must(t, b.Undo())
		if got, want := out(), []int{101, 1, 128, 2}; !cmp.Equal(got, want) {
			t.Fatalf("round %d, after Undo: %v, want %v", round, got, want)
		}
		code := [][16]byte{snapshot16((*mocked).M), snapshot16(less), snapshot16((*flags).high), snapshot16(leafInc)}
		if diff := cmp.Diff(code0, code); diff != "" {
			t.Fatalf("round %d: Undo left code changed:\n%s", round, diff)
		}
	}
}
