package bench

import (
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard"
)

// LookupTable returns a table of n synthetic keys shaped like relay-site
// return addresses (spread over pages, sharing low bits as punned sites
// do), and a power-of-two number of its keys, up to 1,024, to look up.
func LookupTable(n int) (*switchboard.Table, []uintptr) {
	var tab switchboard.Table
	route := new(switchboard.Route)
	var keys []uintptr
	for i := range n {
		key := uintptr(0x7600_0000 + (i/16)*4096 + (i%16)*256 + 0x15)
		tab.Insert(key, route)
		if i%max(1, n/1024) == 0 {
			keys = append(keys, key)
		}
	}
	// A power of two, so callers can index with a mask.
	for len(keys)&(len(keys)-1) != 0 {
		keys = keys[:len(keys)-1]
	}
	return &tab, keys
}

// LookupCost times iters lookups in a table of n keys and returns the mean
// in nanoseconds.
func LookupCost(n, iters int) float64 {
	tab, keys := LookupTable(n)
	var hits int
	t0 := time.Now()
	for i := range iters {
		if tab.Lookup(keys[i&(len(keys)-1)]) != nil {
			hits++
		}
	}
	d := time.Since(t0)
	if hits != iters {
		panic(fmt.Sprintf("bench: %d of %d lookups missed", iters-hits, iters))
	}
	return float64(d.Nanoseconds()) / float64(iters)
}
