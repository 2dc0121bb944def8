// Package modstorm is the flip storm that the plugin and c-shared fixtures
// (testdata/pluginprog, testdata/csharedprog) run on a Go function living
// in a module other than the executable: callers check every result while
// the GC runs every millisecond, the CPU profiler samples, GOMAXPROCS is 4,
// and the function is patched, retargeted (to a replacement calling the
// original through registry.Original) and reset as fast as possible. It
// also checks a goroutine-scoped patch of the function once.
package modstorm

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// Orig, Repl and Through are what a victim returns for x: its original
// body (2x+1), the plain replacement, and the replacement that calls the
// original. C callers of the c-shared fixture check the same three.
func Orig(x int) int    { return 2*x + 1 }
func Repl(x int) int    { return x + 5_000 }
func Through(x int) int { return 2*x + 1 + 1_000_000 }

// Entry is the code address of a func value.
func Entry(fn func(int) int) uintptr { return reflect.ValueOf(fn).Pointer() }

// Tactic is the tactic List reports for the function entered at entry.
func Tactic(entry uintptr) string {
	for _, r := range registry.List() {
		if r.Entry == entry && r.Scope == "global" {
			return r.Tactic
		}
	}
	return "?"
}

// Scoped checks that a ForGoroutine patch of fn reaches this goroutine
// only: a goroutine started before it keeps the original.
func Scoped(fn func(int) int) error {
	ready, got := make(chan struct{}), make(chan int)
	go func() { <-ready; got <- fn(7) }()
	if err := registry.SetWith(fn, Repl, registry.ForGoroutine()); err != nil {
		return fmt.Errorf("SetWith ForGoroutine: %w", err)
	}
	mine := fn(7)
	close(ready)
	other := <-got
	if err := registry.ResetWith(fn, registry.ForGoroutine()); err != nil {
		return fmt.Errorf("ResetWith: %w", err)
	}
	if mine != Repl(7) || other != Orig(7) || fn(7) != Orig(7) {
		return fmt.Errorf("scoped patch: this goroutine got %d (want %d), another %d (want %d), after ResetWith %d", mine, Repl(7), other, Orig(7), fn(7))
	}
	return nil
}

// Run storms fn for d while each of callers (ways to call fn: its func
// value, a function of its module that calls it directly) is called by
// its own goroutine, plus one through the func value and one that also
// calls the original through registry.Original. It returns the
// report line; err is set on any wrong result, on a storm that never saw
// both the original and a replacement, and on a refusal.
func Run(fn func(int) int, callers []func(int) int, d time.Duration) (string, error) {
	orig, err := registry.Original(fn)
	if err != nil {
		return "", fmt.Errorf("Original: %w", err)
	}
	through := func(x int) int { return orig(x) + 1_000_000 }

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		defer pprof.StopCPUProfile()
	}
	var (
		stop                atomic.Bool
		calls, wrong        atomic.Int64
		nOrig, nRepl, nThru atomic.Int64
		firstBad            atomic.Value
		wg                  sync.WaitGroup
	)
	// One caller also calls the original directly, which must run the
	// original body whatever the patch is at that moment.
	callOrig := func(x int) int {
		if orig(x) != Orig(x) {
			return math.MinInt // none of the three results
		}
		return fn(x)
	}
	callers = append([]func(int) int{fn, callOrig}, callers...)
	for g, call := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !stop.Load(); i++ {
				x := i & 1023
				switch got := call(x); got {
				case Orig(x):
					nOrig.Add(1)
				case Repl(x):
					nRepl.Add(1)
				case Through(x):
					nThru.Add(1)
				default:
					wrong.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("caller %d: f(%d) = %d", g, x, got))
				}
				calls.Add(1)
			}
		}()
	}
	wg.Add(1)
	gcs := 0
	go func() {
		defer wg.Done()
		for tick := time.NewTicker(time.Millisecond); !stop.Load(); gcs++ {
			<-tick.C
			runtime.GC()
		}
	}()
	flips := 0
	var flipErr error
	for end := time.Now().Add(d); time.Now().Before(end) && flipErr == nil; flips++ {
		flipErr = errors.Join(registry.Set(fn, Repl), registry.Set(fn, through), registry.Reset(fn))
	}
	stop.Store(true)
	wg.Wait()
	line := fmt.Sprintf("storm: %d callers for %v, %d flips, %d GCs, %d calls (original %d, replacement %d, through original %d), wrong %d",
		len(callers), d, flips, gcs, calls.Load(), nOrig.Load(), nRepl.Load(), nThru.Load(), wrong.Load())
	switch {
	case flipErr != nil:
		return line, flipErr
	case wrong.Load() != 0:
		return line, fmt.Errorf("%d wrong results, first %v", wrong.Load(), firstBad.Load())
	case nOrig.Load() == 0 || nRepl.Load()+nThru.Load() == 0:
		return line, errors.New("the storm never saw both the original and a replacement")
	case fn(5) != Orig(5):
		return line, fmt.Errorf("after Reset f(5) = %d", fn(5))
	}
	return line, nil
}
