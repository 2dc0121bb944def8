package switchboard

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// A Route is where the calls of one patched function go. Its relay site
// carries a pointer to it (the 8 bytes after the site's `jmp r12`), so the
// dispatcher, keyed by its return address, reads the route with one load.
// Routes live outside the garbage collector's view once a site points at
// them: their owner must keep them reachable for the life of the process.
//
// The dispatcher reads the fields without a lock (offsets from go_asm.h);
// every write is one atomic store of a word.
type Route struct {
	// fast is target while there are no guards, else nil: the dispatcher's
	// common case is then one load.
	fast     unsafe.Pointer
	target   unsafe.Pointer // *funcval of the global target; nil = the original
	guards   unsafe.Pointer // *Guard: an immutable array ended by a zero Target; nil = none
	original uintptr        // code of the original: the entry, or the trampoline

	mu sync.Mutex // serializes writers, so that fast follows target and guards
}

// Store sets the global target: fv points to a funcval (the data word of a
// func value), which the route keeps alive. nil sends calls to the original,
// with the caller's closure context (RDX) untouched.
func (r *Route) Store(fv unsafe.Pointer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	atomic.StorePointer(&r.target, fv)
	r.publishFast()
}

// publishFast sets fast from target and guards. A reader between the two
// stores sees the previous state or takes the slow path, which reads
// target and guards themselves.
func (r *Route) publishFast() {
	var fv unsafe.Pointer
	if atomic.LoadPointer(&r.guards) == nil {
		fv = atomic.LoadPointer(&r.target)
	}
	atomic.StorePointer(&r.fast, fv)
}

// Load returns the global target, nil when calls run the original.
func (r *Route) Load() unsafe.Pointer { return atomic.LoadPointer(&r.target) }

// SetOriginal sets where "the original" goes: the function's entry while it
// is unpatched, its trampoline (the relocated prologue) once one exists.
func (r *Route) SetOriginal(code uintptr) { atomic.StoreUintptr(&r.original, code) }

// Original returns the code calls run when the route sends them to the
// original.
func (r *Route) Original() uintptr { return atomic.LoadUintptr(&r.original) }

// A Guard is one scoped target. Every non-zero condition must hold for the
// call to take Target.
type Guard struct {
	RAX    uintptr        // receiver pointer, or generic dictionary: the first integer argument register
	RDX    uintptr        // closure context (the funcval of one closure instance)
	Label  uintptr        // the goroutine's profiler-label word (goroutine-tree scope)
	Target unsafe.Pointer // *funcval the call goes to
}

// SetGuards publishes an immutable copy of gs, most specific first; the
// dispatcher takes the first guard whose conditions all hold. A guard with
// a nil Target would end the list early, so it is dropped. nil or an empty
// list clears the guards.
func (r *Route) SetGuards(gs []Guard) {
	var live []Guard
	for _, g := range gs {
		if g.Target != nil {
			live = append(live, g)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(live) == 0 {
		atomic.StorePointer(&r.guards, nil)
	} else {
		// The zero guard at the end stops the dispatcher's loop.
		arr := append(live, Guard{})
		atomic.StorePointer(&r.guards, unsafe.Pointer(&arr[0]))
	}
	r.publishFast()
}

// Guards returns a copy of the guards in force, nil when there are none.
func (r *Route) Guards() []Guard {
	p := (*Guard)(atomic.LoadPointer(&r.guards))
	if p == nil {
		return nil
	}
	var out []Guard
	for g := p; g.Target != nil; g = (*Guard)(unsafe.Add(unsafe.Pointer(g), unsafe.Sizeof(Guard{}))) {
		out = append(out, *g)
	}
	return out
}

// labelOffset is the offset of the profiler-label word in the g struct,
// read by the dispatcher; 0 means label guards never match.
var labelOffset uintptr

// SetLabelOffset sets the offset of the profiler-label word in the runtime's
// g struct, which the caller must have verified at start-up. 0, the
// default, makes every guard with a Label fail to match.
func SetLabelOffset(off uintptr) { atomic.StoreUintptr(&labelOffset, off) }

// DispatcherPC is the entry of the site-mode dispatcher, the target of every
// relay site's call.
func DispatcherPC() uintptr { return dispatcherPC() }

// CallDispatcherPC is the entry of the call-mode dispatcher, reached from a
// relay stub that loads the route into R13.
func CallDispatcherPC() uintptr { return callDispatcherPC() }

// OriginalEntryPC is the code of the func values registry.Original returns,
// funcval{OriginalEntryPC(), trampoline, n}: a Go assembly stub that copies
// the n bytes of stack-passed arguments and results (at most
// OriginalStackMax together with the callee's register spill area) and
// calls the trampoline.
func OriginalEntryPC() uintptr { return originalCallPC() }

// OriginalStackMax is how many bytes of stack arguments, stack results and
// register-argument spill area the Original stub's frame holds.
const OriginalStackMax = 480 // OUT_MAX in asm_amd64.s

// OriginalReturnPC is the return address inside the Original stub, after
// its call of the trampoline. The dispatcher routes a call whose caller
// returns there (a morestack restart) to the route's original.
func OriginalReturnPC() uintptr { return originalRet }

// NilFaultPC is the stub a trampoline's nil check jumps to: it faults at a
// Go PC, so that a nil receiver panics as in the original code.
func NilFaultPC() uintptr { return nilFaultPC() }

// Implemented in asm_amd64.s.
func dispatcherPC() uintptr
func callDispatcherPC() uintptr
func nilFaultPC() uintptr
func nilFault()
func dispatcher()
func callDispatcher()

// originalRet is the return address inside originalCall, after its call of
// the trampoline: rule 1 of the dispatcher compares 8(SP) with it. init
// learns it by calling captureReturn through originalCall.
var originalRet uintptr

func init() {
	fv := &[3]uintptr{originalCallPC(), captureReturnPC(), 0}
	var probe func()
	*(*unsafe.Pointer)(unsafe.Pointer(&probe)) = unsafe.Pointer(fv)
	probe()
	if originalRet == 0 {
		panic("switchboard: originalCall did not call its target")
	}
}

func originalCallPC() uintptr
func captureReturnPC() uintptr
func gWord(off uintptr) uintptr
func originalCall()
func captureReturn()
