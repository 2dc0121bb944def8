package registry_test

import (
	"io"
	"reflect"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func stormByName(x int) int { return 2*x + 3 + byNameTriple(0) }

// TestFlipStormReflectAndByName is the flip storm over the paths this
// file's API adds: the victim is patched through a func value Lookup made
// from its name, with SetValue, alternately to a reflect.MakeFunc impl and
// to a closure, and reset with ResetValue, while three goroutines call it
// and check every result, the GC runs every millisecond, the CPU profiler
// samples and GOMAXPROCS is 4.
func TestFlipStormReflectAndByName(t *testing.T) {
	fn, err := registry.LookupValue(testPkg()+".stormByName", reflect.TypeFor[func(int) int]())
	must(t, err)
	made := reflect.MakeFunc(fn.Type(), func(in []reflect.Value) []reflect.Value {
		return []reflect.Value{reflect.ValueOf(int(in[0].Int()) + 1_000_000)}
	})
	closure := reflect.ValueOf(func(x int) int { return -x })
	want := func(x int) [3]int { return [3]int{2*x + 3, x + 1_000_000, -x} }

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		defer pprof.StopCPUProfile()
	}
	var stop atomic.Bool
	var wrong, calls atomic.Int64
	var seen [3]atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}()
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !stop.Load(); i++ {
				x := i & 1023
				got, w := stormByName(x), want(x)
				switch got {
				case w[0]:
					seen[0].Add(1)
				case w[1]:
					seen[1].Add(1)
				case w[2]:
					seen[2].Add(1)
				default:
					wrong.Add(1)
				}
				calls.Add(1)
			}
		}()
	}
	d := 3 * time.Second
	if testing.Short() {
		d = time.Second
	}
	flips := 0
	sawAll := func() bool { return seen[0].Load() > 0 && seen[1].Load() > 0 && seen[2].Load() > 0 }
	for deadline := time.Now().Add(d); keepFlipping(deadline, sawAll); flips += 3 {
		if err := registry.SetValue(fn, made); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
		must(t, registry.SetValue(fn, closure))
		must(t, registry.ResetValue(fn))
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d flips, %d calls (original %d, MakeFunc %d, closure %d), %d wrong",
		flips, calls.Load(), seen[0].Load(), seen[1].Load(), seen[2].Load(), wrong.Load())
	if wrong.Load() != 0 {
		t.Fatalf("%d wrong results", wrong.Load())
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 || seen[2].Load() == 0 {
		t.Fatal("callers never saw every target")
	}
}
