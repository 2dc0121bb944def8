package switchboard

import (
	"sync/atomic"
	"unsafe"
)

// A CRoute is where the calls of one patched C function go. Its relay site
// (see package dispatch) carries a pointer to it in the 8 bytes after the
// site's JMP R11, so cdispatcher finds it with one load from its return
// address, with no table. C has no closures: the route holds a code
// pointer, not a funcval. The owner keeps it reachable for the life of the
// process, since sites are never freed.
type CRoute struct {
	code unsafe.Pointer // read by cdispatcher (CRoute_code)
}

// Store points the route at C code: the replacement, or the original
// entry once the entry is restored. Readers see the old or the new value.
func (r *CRoute) Store(code unsafe.Pointer) { atomic.StorePointer(&r.code, code) }

// Load returns the code the route leads to.
func (r *CRoute) Load() unsafe.Pointer { return atomic.LoadPointer(&r.code) }

// CDispatcherPC returns the entry of cdispatcher, the dispatcher that the
// relay sites of C functions call.
func CDispatcherPC() uintptr { return cdispatcherPC() }

// CSiteRouteOffset is how far the route pointer lies past the return
// address of a C site's call: the length of its JMP R11.
const CSiteRouteOffset = 3
