package switchboard

import (
	"slices"
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
// The dispatcher decides a call from one word it loads: fast, or else
// table, an immutable snapshot of every guard, the global target and the
// original. Two words read at different times could mix two states that
// never held together (the guards of one move and the global target of
// the next): a call would then run the original while a patch is in.
type Route struct {
	// fast is target while there are no guards, else nil: the dispatcher's
	// common case is then one load.
	fast unsafe.Pointer
	// table is nil when calls run the original and there are no guards;
	// otherwise a *entry array: the guards, most specific first, ended by
	// a terminator (see entry).
	table    unsafe.Pointer
	original uintptr // code of the original: the entry, or the trampoline

	target unsafe.Pointer // *funcval of the global target, for Load; nil = the original
	guards []Guard        // the guards in force, for Guards

	mu sync.Mutex // serializes writers, so that fast and table follow the state
}

// An entry is one row of a route's table, as the dispatcher reads it: a
// Guard and the code that checks it. The site-mode dispatcher jumps to
// check with R12 = &entry; check compares the conditions of its kind and
// on a match returns target's code, else jumps to the next entry's check.
// A terminator ends every table: target nil, rax the global target's
// funcval (0: none) and rdx the original's code; its check returns the
// global target, or the original with the caller's RDX. The call-mode
// dispatcher ignores check and tests every condition (a zero one always
// holds) up to the terminator.
type entry struct {
	check                uintptr
	rax, rbx, rdx, label uintptr
	target               unsafe.Pointer
}

func entryOf(check uintptr, g Guard) entry {
	return entry{check: check, rax: g.RAX, rbx: g.RBX, rdx: g.RDX, label: g.Label, target: g.Target}
}

// The checks, an index into checks: a kind of guard (one condition, the
// common guards, compared with one instruction; or any combination) times
// a tail (what a miss does: go on to the next entry, or, for the last
// guard, what the terminator after it does), then the terminators' own,
// for a table without guards.
const (
	checkRAX = iota
	checkRBX
	checkRDX
	checkLabel
	checkAll
	checkDropRAX // RAX, and a target that is DropDictionary's adapter at 0
	checkDropRBX // RBX, and the adapter at 1
	numKinds
)

const (
	tailNext = iota
	tailGlobal
	tailOriginal
	numTails
)

const (
	checkGlobal = numKinds*numTails + iota
	checkOriginal
	numChecks
)

// checks holds the code of each check (zero off amd64, where nothing
// dispatches).
var checks = checkPCs()

// checkOf is the check of g with tail: by its one condition, or checkAll.
// A guard of one dictionary register whose target is DropDictionary's
// adapter for that register gets the check that does the adapter's work
// itself and runs the replacement directly.
func checkOf(g Guard, tail int) uintptr {
	kind := checkAll
	var code uintptr
	if g.Target != nil {
		code = *(*uintptr)(g.Target)
	}
	switch {
	case g.RBX == 0 && g.RDX == 0 && g.Label == 0 && g.RAX != 0:
		kind = checkRAX
		if code != 0 && code == dropDictionaryPC() {
			kind = checkDropRAX
		}
	case g.RAX == 0 && g.RDX == 0 && g.Label == 0 && g.RBX != 0:
		kind = checkRBX
		if code != 0 && code == dropDictionaryRBXPC() {
			kind = checkDropRBX
		}
	case g.RAX == 0 && g.RBX == 0 && g.Label == 0 && g.RDX != 0:
		kind = checkRDX
	case g.RAX == 0 && g.RBX == 0 && g.RDX == 0 && g.Label != 0:
		kind = checkLabel
	}
	return checks[kind*numTails+tail]
}

// Store sets the global target: fv points to a funcval (the data word of a
// func value), which the route keeps alive. nil sends calls to the original,
// with the caller's closure context (RDX) untouched.
func (r *Route) Store(fv unsafe.Pointer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	atomic.StorePointer(&r.target, fv)
	r.publish()
}

// publish writes the snapshot of the route's state the dispatcher reads,
// table first: a reader of either word sees a whole state, the previous
// one until the write ends.
func (r *Route) publish() {
	target := atomic.LoadPointer(&r.target)
	var table unsafe.Pointer
	if target != nil || len(r.guards) > 0 {
		last := entry{check: checks[checkOriginal], rax: uintptr(target), rdx: atomic.LoadUintptr(&r.original)}
		tail := tailOriginal
		if target != nil {
			last.check, tail = checks[checkGlobal], tailGlobal
		}
		arr := make([]entry, 0, len(r.guards)+1)
		for i, g := range r.guards {
			t := tailNext
			if i == len(r.guards)-1 {
				t = tail // the last guard reads the terminator after it
			}
			arr = append(arr, entryOf(checkOf(g, t), g))
		}
		arr = append(arr, last)
		table = unsafe.Pointer(&arr[0])
	}
	atomic.StorePointer(&r.table, table)
	var fv unsafe.Pointer
	if len(r.guards) == 0 {
		fv = target
	}
	atomic.StorePointer(&r.fast, fv)
}

// Load returns the global target, nil when calls run the original.
func (r *Route) Load() unsafe.Pointer { return atomic.LoadPointer(&r.target) }

// SetOriginal sets where "the original" goes: the function's entry while it
// is unpatched, its trampoline (the relocated prologue) once one exists.
func (r *Route) SetOriginal(code uintptr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	atomic.StoreUintptr(&r.original, code)
	r.publish()
}

// Original returns the code calls run when the route sends them to the
// original.
func (r *Route) Original() uintptr { return atomic.LoadUintptr(&r.original) }

// A Guard is one scoped target. Every non-zero condition must hold for the
// call to take Target.
type Guard struct {
	RAX    uintptr        // receiver pointer, or generic dictionary: the first integer argument register
	RBX    uintptr        // the second: the dictionary of a method whose receiver takes RAX
	RDX    uintptr        // closure context (the funcval of one closure instance)
	Label  uintptr        // the goroutine's profiler-label word (goroutine-tree scope)
	Target unsafe.Pointer // *funcval the call goes to
}

// SetGuards publishes a copy of gs, most specific first; the dispatcher
// takes the first guard whose conditions all hold. A guard with a nil
// Target is dropped. nil or an empty list clears the guards.
func (r *Route) SetGuards(gs []Guard) {
	var live []Guard
	for _, g := range gs {
		if g.Target != nil {
			live = append(live, g)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.guards = live
	r.publish()
}

// Guards returns a copy of the guards in force, nil when there are none.
func (r *Route) Guards() []Guard {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.guards)
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

// SlotDispatcherPC is the entry of the dispatcher that the slots of a slot
// page call (see SlotRouteOffset).
func SlotDispatcherPC() uintptr { return slotDispatcherPC() }

// SlotRouteOffset is how far past the return address of a slot's call the
// slot dispatcher reads the slot's *Route: at the same offset in the page
// after the slot's, a data page. Slots are written with their page, before
// their functions are known, and a patch that takes one stores its route
// as data, writing no code.
const SlotRouteOffset = 4096

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
