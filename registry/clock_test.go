//go:build linux && amd64

package registry_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func clockVictim(x int) int { return x + 7 }

type clockRecv struct{ n int }

//go:noinline
func (c *clockRecv) get(x int) int { return c.n + clockVictim(x) }

// TestClockNeverReadUnderTheLock: time is in Switchboard's own dependency
// closure, yet time.Now may be patched, because no registry operation
// reads the clock while it holds its lock. The fake clock notes whether
// the lock is held when it runs (where a fake that called the registry
// would deadlock). It must not block: the runtime's timers call time.Now
// on the scheduler's stack (time.sendTime).
func TestClockNeverReadUnderTheLock(t *testing.T) {
	var calls, locked atomic.Int64
	fake := func() time.Time {
		calls.Add(1)
		if registry.Locked() {
			locked.Add(1)
		}
		return time.Unix(1e9, 0)
	}
	must(t, registry.Set(time.Now, fake))
	defer func() { must(t, registry.Reset(time.Now)) }()
	if got := time.Now().Unix(); got != 1e9 {
		t.Fatalf("time.Now not faked: %d", got)
	}
	calls.Store(0)
	orig, err := registry.Original(clockVictim)
	must(t, err)
	must(t, registry.Set(clockVictim, func(x int) int { return orig(x) * 2 }))
	must(t, registry.Set(clockVictim, func(x int) int { return -x }))
	must(t, registry.SetWith(clockVictim, func(x int) int { return 0 }, registry.ForGoroutine()))
	must(t, registry.ResetWith(clockVictim, registry.ForGoroutine()))
	c := &clockRecv{n: 1}
	must(t, registry.SetWith((*clockRecv).get, func(*clockRecv, int) int { return 9 }, registry.ForReceiver(c)))
	if registry.Set[func(int) int](nil, nil) == nil {
		t.Error("Set(nil) accepted")
	}
	b := registry.NewBatch()
	must(t, registry.Stage(b, clockVictim, func(x int) int { return 3 }))
	must(t, b.Commit())
	must(t, b.Undo())
	_ = registry.List()
	must(t, registry.Reset((*clockRecv).get))
	must(t, registry.Reset(clockVictim))
	if calls.Load() == 0 {
		t.Fatal("the fake clock was never called: the test proves nothing")
	}
	if n := locked.Load(); n > 0 {
		t.Errorf("%d of %d clock reads happened while the registry was locked", n, calls.Load())
	}
}
