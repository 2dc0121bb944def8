//go:build linux && amd64

package registry_test

import (
	"io"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

type rcat struct{ cents [16]int }

//go:noinline
func rtag(v, t int) int { return v<<4 | t }

// Unit calls a function, so it opens with the stack check (no tiny leaf).
//
//go:noinline
func (c *rcat) Unit(sku int) int { return rtag(c.cents[sku&15], 0) }

type rCatalog interface{ Unit(int) int }

var phase atomic.Int32

//go:noinline
func rflat(c *rcat, sku int) int { return rtag(100, 2) }

func rpromo(pct, tag int) func(*rcat, int) int {
	return func(c *rcat, sku int) int { return rtag(c.cents[sku&15]*(100-pct)/100, tag) }
}

// TestGuardMoveStorm moves a method between no patch, two global patches
// and a receiver-scoped one, in random order and the way the demo does
// (the new patch set before the old one is removed), while goroutines call
// it through an interface with that receiver, under GC, the profiler and
// GOMAXPROCS 4. Once a patch is in and until a Reset starts, no call may
// run the original.
func TestGuardMoveStorm(t *testing.T) {
	d := stormTotal(t) / 4
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		defer pprof.StopCPUProfile()
	}
	c := &rcat{}
	for i := range c.cents {
		c.cents[i] = 100 + 37*i
	}
	var cat rCatalog = c
	p20, p30 := rpromo(20, 1), rpromo(30, 3)
	must(t, registry.Set((*rcat).Unit, p20))
	var stop atomic.Bool
	var wrong, calls atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for i := w; !stop.Load(); i++ {
				ph := phase.Load()
				r := cat.Unit(i)
				if r&15 == 0 && ph == 0 && phase.Load() == 0 {
					if wrong.Add(1) < 5 {
						t.Errorf("original ran: %#x", r)
					}
				}
				n++
			}
			calls.Add(n)
		}()
	}
	flips := 0
	impls := []func(*rcat, int) int{nil, p20, rflat, p30}
	cur := 1
	rng := uint64(1)
	move := func(i int) {
		recv, old := i == 3, cur == 3
		switch {
		case i == 0:
			phase.Store(1) // original allowed from now until the next patch is in
			must(t, registry.Reset((*rcat).Unit))
		case recv:
			must(t, registry.SetWith((*rcat).Unit, impls[i], registry.ForReceiver(c)))
			if cur != 0 && !old {
				must(t, registry.ResetWith((*rcat).Unit))
			}
		default:
			must(t, registry.Set((*rcat).Unit, impls[i]))
			if old {
				must(t, registry.ResetWith((*rcat).Unit, registry.ForReceiver(c)))
			}
		}
		if i != 0 {
			phase.Store(0)
		}
		cur = i
	}
	for end := time.Now().Add(d); time.Now().Before(end); flips++ {
		rng = rng*6364136223846793005 + 1442695040888963407
		i := int(rng>>33) % 4
		if i == cur {
			continue
		}
		move(i)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d moves, %d calls, %d wrong", flips, calls.Load(), wrong.Load())
	must(t, registry.Reset((*rcat).Unit))
}
