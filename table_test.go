package switchboard

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// siteKey spreads keys like relay-site return addresses: 16 per page, all
// sharing their low byte, as punned sites often do.
func siteKey(i int) uintptr { return uintptr(0x7600_0000 + (i/16)*4096 + (i%16)*256 + 0x15) }

// probes counts the slots the dispatcher's probe visits to find key.
func (s *tableState) probes(key uintptr) int {
	n := 1
	for i := slotIndex(key, s.mask); s.backing[i].key != key; i = (i + 1) & s.mask {
		n++
	}
	return n
}

func TestTableLookupAtScale(t *testing.T) {
	for _, n := range []int{1, 1_000, 100_000} {
		t.Run(fmt.Sprintf("keys=%d", n), func(t *testing.T) {
			var tab Table
			routes := make([]Route, n)
			for i := range n {
				tab.Insert(siteKey(i), &routes[i])
			}
			if tab.Len() != n {
				t.Fatalf("Len %d", tab.Len())
			}
			s := tab.state.Load()
			total, worst := 0, 0
			for i := range n {
				if got := tab.Lookup(siteKey(i)); got != &routes[i] {
					t.Fatalf("Lookup(key %d) = %p, want %p", i, got, &routes[i])
				}
				p := s.probes(siteKey(i))
				total += p
				worst = max(worst, p)
			}
			for _, miss := range []uintptr{1, siteKey(n), siteKey(n) + 1, 0xdead_0000} {
				if got := tab.Lookup(miss); got != nil {
					t.Fatalf("Lookup(%#x) = %p, want nil", miss, got)
				}
			}
			// The cost of a lookup is its probes: on average about one,
			// whatever the number of keys (linear probing at load <= 1/2).
			mean := float64(total) / float64(n)
			t.Logf("%d keys in %d slots: mean %.2f probes, worst %d", n, len(s.backing), mean, worst)
			if mean > 1.6 || worst > 32 {
				t.Fatalf("mean %.2f probes, worst %d: the hash clusters", mean, worst)
			}
		})
	}
}

func TestTableInsertRules(t *testing.T) {
	var tab Table
	r1, r2 := new(Route), new(Route)
	tab.Insert(0x1000, r1)
	tab.Insert(0x1000, r1) // the same route again: no-op
	if tab.Len() != 1 {
		t.Fatalf("Len %d after a repeated insert", tab.Len())
	}
	for name, f := range map[string]func(){
		"another route": func() { tab.Insert(0x1000, r2) },
		"zero key":      func() { tab.Insert(0, r1) },
		"nil route":     func() { tab.Insert(0x2000, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	var empty Table
	if empty.Lookup(0x1000) != nil || empty.Len() != 0 {
		t.Fatal("empty table found something")
	}
}

// TestTableReadersDuringGrowth: lookups without a lock, while a writer
// inserts through several growths, always find every key published before
// they started, with its own route.
func TestTableReadersDuringGrowth(t *testing.T) {
	var tab Table
	const n = 20_000
	routes := make([]Route, n)
	var published atomic.Int64
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; published.Load() < n; j++ {
				k := published.Load()
				if k == 0 {
					continue
				}
				i := j % int(k)
				if tab.Lookup(siteKey(i)) != &routes[i] {
					bad.Add(1)
				}
			}
		}()
	}
	for i := range n {
		tab.Insert(siteKey(i), &routes[i])
		published.Store(int64(i + 1))
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d lookups missed a published key", bad.Load())
	}
	if len(tab.retired) == 0 {
		t.Fatal("the table never grew: the test did not test growth")
	}
}

func TestRouteStoreLoad(t *testing.T) {
	var r Route
	f := func() {}
	fv := *(*unsafe.Pointer)(unsafe.Pointer(&f))
	r.Store(fv)
	if r.Load() != fv {
		t.Fatal("Load after Store")
	}
}

func TestDispatcherEntries(t *testing.T) {
	if DispatcherPC() == 0 || CallDispatcherPC() == 0 || DispatcherPC() == CallDispatcherPC() {
		t.Fatalf("dispatcher %#x, call dispatcher %#x", DispatcherPC(), CallDispatcherPC())
	}
	// Both are 32-byte aligned function entries (cmd/link funcAlign).
	if DispatcherPC()%32 != 0 || CallDispatcherPC()%32 != 0 {
		t.Fatalf("unaligned dispatcher entries %#x %#x", DispatcherPC(), CallDispatcherPC())
	}
}
