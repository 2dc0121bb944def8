package switchboard

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// A Route is where the calls of one patched function go now. The dispatcher
// reads it without a lock, so it holds a single word: a pointer to a Go
// funcval, whose first word is the code address and which is itself the
// closure context passed in RDX.
type Route struct {
	target unsafe.Pointer // *funcval, stored atomically
}

// Store retargets the route. fv must point to a funcval (the data word of a
// func value), which the route keeps alive.
func (r *Route) Store(fv unsafe.Pointer) { atomic.StorePointer(&r.target, fv) }

// Load returns the funcval the route currently points at.
func (r *Route) Load() unsafe.Pointer { return atomic.LoadPointer(&r.target) }

// slot is one entry of the open-addressed table. A zero key is empty.
type slot struct {
	key   uintptr
	route *Route
}

// tableState is one immutable-size generation of the table. The dispatcher
// reads slots, mask and end (offsets from go_asm.h); a grown table is a new
// tableState published with one atomic store.
type tableState struct {
	slots unsafe.Pointer // &backing[0]
	mask  uintptr        // len(backing)-1
	end   uintptr        // address just past backing; probes wrap here
	used  int
	// backing keeps the slots reachable for the garbage collector.
	backing []slot
}

// Table maps return addresses (keys) to routes. Writers are serialized by a
// mutex; lookups, in Go or in the dispatcher, take no lock. Keys are never
// removed and their route never changes, so a reader that found a key may
// use its route for ever.
type Table struct {
	state atomic.Pointer[tableState] // first: the dispatcher loads it from offset 0

	mu      sync.Mutex
	retired []*tableState // older generations, kept for readers still in them
}

const (
	minSlots = 64
	hashMul  = 0x9E3779B97F4A7C15 // must match asm_amd64.s
)

// slotIndex is the hash the dispatcher computes: the middle bits of a
// multiplicative hash, so that keys differing only in high bits (relay
// pages) or sharing low bits (punned sites) still spread.
func slotIndex(key, mask uintptr) uintptr {
	return uintptr(uint64(key)*hashMul>>32) & mask
}

func newState(n int) *tableState {
	b := make([]slot, n)
	return &tableState{
		slots:   unsafe.Pointer(&b[0]),
		mask:    uintptr(n - 1),
		end:     uintptr(unsafe.Pointer(&b[0])) + uintptr(n)*unsafe.Sizeof(slot{}),
		backing: b,
	}
}

// Insert adds key with its route. Inserting an existing key with the same
// route is a no-op; with another route it panics, because a key's route is
// fixed for the life of the process.
func (t *Table) Insert(key uintptr, r *Route) {
	if key == 0 || r == nil {
		panic("switchboard: Insert of a zero key or nil route")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state.Load()
	if s == nil {
		s = newState(minSlots)
		t.state.Store(s)
	}
	if old := s.find(key); old != nil {
		if old != r {
			panic("switchboard: key inserted twice with different routes")
		}
		return
	}
	if (s.used+1)*2 > len(s.backing) {
		g := newState(len(s.backing) * 2)
		for _, e := range s.backing {
			if e.key != 0 {
				g.put(e.key, e.route)
			}
		}
		// Readers already inside s keep using it; it stays valid because
		// nothing is ever removed from it.
		t.retired = append(t.retired, s)
		t.state.Store(g)
		s = g
	}
	s.put(key, r)
}

// put fills the first empty slot of key's probe sequence. The route is
// stored before the key, so a reader that sees the key sees its route.
func (s *tableState) put(key uintptr, r *Route) {
	for i := slotIndex(key, s.mask); ; i = (i + 1) & s.mask {
		e := &s.backing[i]
		if atomic.LoadUintptr(&e.key) == 0 {
			atomic.StorePointer((*unsafe.Pointer)(unsafe.Pointer(&e.route)), unsafe.Pointer(r))
			atomic.StoreUintptr(&e.key, key)
			s.used++
			return
		}
	}
}

func (s *tableState) find(key uintptr) *Route {
	for i := slotIndex(key, s.mask); ; i = (i + 1) & s.mask {
		e := &s.backing[i]
		switch atomic.LoadUintptr(&e.key) {
		case key:
			return (*Route)(atomic.LoadPointer((*unsafe.Pointer)(unsafe.Pointer(&e.route))))
		case 0:
			return nil
		}
	}
}

// Lookup returns key's route, or nil. It runs the dispatcher's own probe
// code (asm_amd64.s), so tests and benchmarks measure what calls pay.
func (t *Table) Lookup(key uintptr) *Route {
	s := t.state.Load()
	if s == nil || key == 0 {
		return nil
	}
	return lookup(s, key)
}

// Len reports how many keys the table holds.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.state.Load(); s != nil {
		return s.used
	}
	return 0
}

// Routes is the table the dispatcher reads. Package dispatch inserts the key
// of every relay site it creates.
var Routes Table

// DispatcherPC is the entry of the site-mode dispatcher, the target of every
// relay site's call.
func DispatcherPC() uintptr { return dispatcherPC() }

// CallDispatcherPC is the entry of the call-mode dispatcher, reached by a
// 5-byte call written into the prologue itself.
func CallDispatcherPC() uintptr { return callDispatcherPC() }

// OriginalEntryPC is the code of the func values registry.Original
// returns: a stub that jumps to the trampoline in the funcval's second word.
func OriginalEntryPC() uintptr { return originalEntryPC() }

// lostRoute runs when the dispatcher met a key it does not know. Every site
// is inserted before any code can reach it, so this is a Switchboard bug.
func lostRoute() {
	panic("switchboard: dispatcher reached from a relay site that has no route (bug)")
}

// Implemented in asm_amd64.s.
func lookup(s *tableState, key uintptr) *Route
func dispatcherPC() uintptr
func callDispatcherPC() uintptr
func originalEntryPC() uintptr
func originalEntry()
func dispatcher()
func callDispatcher()
func dispatchLost()
