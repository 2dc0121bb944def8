package registry

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/unwind"
)

var (
	// ErrNoSymbols: the object holding a C function keeps no symbol for
	// it (a stripped shared object lists its exported functions only), so
	// its extent, and what a patch may overwrite, are unknown.
	ErrNoSymbols = unwind.ErrNoSymbols
	// ErrSymbolNotFound: LookupSymbol found the name in no loaded object.
	ErrSymbolNotFound = errors.New("no loaded object defines the function")
)

// crecord is the life-long state of one patched C function.
type crecord struct {
	name   string
	entry  unsafe.Pointer
	module string
	fn     dispatch.Func
	route  switchboard.CRoute // its site points here: kept for ever

	patch   *dispatch.CPatch
	planErr error
	active  bool
	ever    bool           // the patch was written once: List shows it
	impl    unsafe.Pointer // code calls go to while active

	tramp    *dispatch.Trampoline
	trampErr error
}

// cByEntry holds the C records, under reg.mu.
var cByEntry = map[uintptr]*crecord{}

// SetC redirects every call of the C function fn, from any thread, to the
// C code impl, until ResetC. fn and impl are C code pointers: what cgo
// gives for C.name, what dlsym returns, or LookupSymbol's result. impl
// must have fn's C signature; it may be in any loaded object, however far
// from fn (the relay site jumps to it through a register).
//
// The first SetC writes the patch with one atomic store; later ones store
// one pointer. SetC(fn, fn) is ResetC(fn). A refused SetC returns an
// *Error wrapping one of the Err* sentinels and changes nothing.
func SetC(fn, impl unsafe.Pointer) error {
	if err := supported(); err != nil {
		return &Error{Op: "SetC", Func: "C function", Entry: uintptr(fn), Err: err}
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, err := lookupC("SetC", fn)
	if err != nil {
		return err
	}
	fail := func(err error) error { return &Error{Op: "SetC", Func: rec.name, Entry: uintptr(rec.entry), Err: err} }
	switch {
	case impl == nil:
		return fail(because(ErrNil, "impl is nil"))
	case impl == rec.entry:
		return resetC(rec, "SetC")
	case runtime.FuncForPC(uintptr(impl)) != nil:
		return fail(because(ErrNotFunc, "impl %#x is Go code (%s): C callers cannot call Go's ABI", uintptr(impl), unwind.Name(uintptr(impl))))
	case !unwind.Executable(uintptr(impl)):
		return fail(because(ErrNotFunc, "impl %#x is not in an executable mapping", uintptr(impl)))
	}
	if err := noCycleC(rec, impl); err != nil {
		return fail(err)
	}
	if rec.active {
		rec.impl = impl
		rec.route.Store(impl)
		return nil
	}
	p, err := rec.plan()
	if err != nil {
		return fail(err)
	}
	// The route leads to impl before the prologue leads to the route.
	prev := rec.route.Load()
	rec.route.Store(impl)
	if err := p.Install(&rec.route); err != nil {
		rec.route.Store(prev)
		return fail(err)
	}
	written, err := p.Apply(rec.entry)
	if written {
		rec.active, rec.ever, rec.impl = true, true, impl
	} else {
		rec.route.Store(prev)
	}
	return unfinished(fail, written, err)
}

// ResetC makes the calls of the C function fn run its original body again:
// the original bytes come back with one atomic store, then the route
// points at the entry for calls still on their way. ResetC of a function
// that is not redirected does nothing.
func ResetC(fn unsafe.Pointer) error {
	if err := supported(); err != nil {
		return &Error{Op: "ResetC", Func: "C function", Entry: uintptr(fn), Err: err}
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, err := lookupC("ResetC", fn)
	if err != nil {
		return err
	}
	return resetC(rec, "ResetC")
}

func resetC(rec *crecord, op string) error {
	if !rec.active {
		return nil
	}
	written, err := rec.patch.Restore(rec.entry)
	if written {
		rec.route.Store(rec.entry)
		rec.active, rec.impl = false, nil
	}
	fail := func(err error) error { return &Error{Op: op, Func: rec.name, Entry: uintptr(rec.entry), Err: err} }
	return unfinished(fail, written, err)
}

// OriginalC returns a pointer to code that runs the C function fn's
// original body, whether fn is redirected or not: a trampoline holding a
// relocated copy of the instructions the patch covers, then a jump back
// into fn. Call it from C with fn's signature (cast it to fn's pointer
// type); a replacement calls through it. It refuses what SetC refuses, and
// functions whose first instructions cannot run from a copy
// (ErrUnpatchable): a call among them, or a branch into them.
func OriginalC(fn unsafe.Pointer) (unsafe.Pointer, error) {
	if err := supported(); err != nil {
		return nil, &Error{Op: "OriginalC", Func: "C function", Entry: uintptr(fn), Err: err}
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, err := lookupC("OriginalC", fn)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (unsafe.Pointer, error) {
		return nil, &Error{Op: "OriginalC", Func: rec.name, Entry: uintptr(rec.entry), Err: err}
	}
	if rec.trampErr != nil {
		return fail(rec.trampErr)
	}
	if rec.tramp == nil {
		p, err := rec.plan()
		if err != nil {
			return fail(err)
		}
		t, err := planner().PlanCTrampoline(rec.fn, p)
		if err != nil {
			rec.trampErr = err
			return fail(err)
		}
		rec.tramp = t
	}
	// Install resumes where a failed attempt stopped; it is a no-op after
	// success.
	if err := rec.tramp.Install(rec.entry); err != nil {
		return fail(err)
	}
	return unsafe.Add(unsafe.Pointer(nil), rec.tramp.Addr), nil
}

// LookupSymbol finds a function of the executable or of any loaded shared
// object by name: a C symbol ("one"), or a C++ function by its demangled
// name ("shop::Price::get(int) const"). It reads each object's .symtab and
// .dynsym from its file (as /proc/self/maps names it) and adds the
// object's load bias. The result can be passed to SetC, ResetC and
// OriginalC.
func LookupSymbol(name string) (unsafe.Pointer, error) {
	addr, _, err := unwind.LookupSymbol(name)
	if err != nil {
		return nil, &Error{Op: "LookupSymbol", Func: name, Err: because(ErrSymbolNotFound, "%v", err)}
	}
	return unsafe.Add(unsafe.Pointer(nil), addr), nil
}

// plan returns the function's patch, planning it on first use. A failed
// plan is kept, as for Go functions.
func (rec *crecord) plan() (*dispatch.CPatch, error) {
	if rec.patch != nil {
		return rec.patch, nil
	}
	if rec.planErr != nil {
		return nil, rec.planErr
	}
	p, err := planner().PlanC(rec.fn)
	if err == nil {
		if verr := dispatch.Verify(rec.fn, p.Patch()); verr != nil {
			err = because(ErrUnpatchable, "planned patch failed verification: %v", verr)
		}
	}
	if err != nil {
		rec.planErr = err
		return nil, err
	}
	rec.patch = p
	return p, nil
}

// lookupC validates the C code pointer fn and returns its record, creating
// it on first use.
func lookupC(op string, fn unsafe.Pointer) (*crecord, error) {
	planner()
	fail := func(name string, err error) (*crecord, error) {
		return nil, &Error{Op: op, Func: name, Entry: uintptr(fn), Err: err}
	}
	if fn == nil {
		return fail("<nil>", because(ErrNil, "fn is nil"))
	}
	if rec := cByEntry[uintptr(fn)]; rec != nil {
		return rec, nil
	}
	pc := uintptr(fn)
	if runtime.FuncForPC(pc) != nil {
		return fail(unwind.Name(pc), because(ErrNotEntry, "it is Go code: use Set"))
	}
	f, mod, err := unwind.LookupC(pc)
	if err != nil {
		if errors.Is(err, unwind.ErrNoSymbols) {
			return fail(fmt.Sprintf("%#x", pc), err)
		}
		return fail(fmt.Sprintf("%#x", pc), because(ErrNotEntry, "%v", err))
	}
	name := unwind.Demangle(f.Name)
	if err := cCode(mod.Path, f.Name); err != nil {
		return fail(name, err)
	}
	live := unsafe.Slice((*byte)(fn), f.Room())
	code := slices.Clone(live[:f.Size])
	rec := &crecord{
		name:   name,
		entry:  fn,
		module: mod.Path,
		fn:     dispatch.Func{Name: name, Entry: f.Entry, Size: f.Size, Bytes: append(code, live[f.Size:f.Size+dispatch.CPadding(live[f.Size:])]...)},
	}
	rec.route.Store(fn)
	cByEntry[pc] = rec
	return rec, nil
}

// noCycleC refuses a target that, following the C redirects in force,
// leads back to rec.
func noCycleC(rec *crecord, code unsafe.Pointer) error {
	path := []string{rec.name}
	for seen := map[unsafe.Pointer]bool{}; !seen[code]; {
		seen[code] = true
		if code == rec.entry {
			return because(ErrCycle, "%s", strings.Join(append(path, rec.name), " -> "))
		}
		next := cByEntry[uintptr(code)]
		if next == nil || !next.active {
			return nil
		}
		path = append(path, next.name)
		code = next.impl
	}
	return nil
}

// listC reports the C functions patched so far, for List.
func listC() []Redirect {
	var out []Redirect
	for _, rec := range cByEntry {
		if !rec.ever {
			continue // planned for OriginalC, or refused: never patched
		}
		p := rec.patch.Patch()
		r := Redirect{
			Func: rec.name, Entry: uintptr(rec.entry), Tactic: p.Tactic.String(),
			Mode: "c-site", Site: p.Site, Active: rec.active, Target: rec.name,
		}
		if rec.active {
			r.Target = cName(rec.impl)
		}
		out = append(out, r)
	}
	return out
}

// cName names C code for List: its symbol, or its address.
func cName(code unsafe.Pointer) string {
	if f, _, err := unwind.LookupC(uintptr(code)); err == nil {
		return unwind.Demangle(f.Name)
	}
	return fmt.Sprintf("%#x", uintptr(code))
}
