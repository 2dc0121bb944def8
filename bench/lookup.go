package bench

import "github.com/switchboard-go/switchboard"

// LookupTable returns a table of n synthetic keys shaped like relay-site
// return addresses (spread over pages, sharing low bits as punned sites
// do), and up to 1,024 of its keys to look up.
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
	return &tab, keys
}
