package registry

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/unwind"
)

// Mode selects what the patched prologue holds.
type Mode = dispatch.Mode

const (
	// SiteMode, the default: a punned jmp to a relay site that calls the
	// shared dispatcher and jumps to the target it returns.
	SiteMode = dispatch.SiteMode
	// CallMode: the card-literal design, a call written into the prologue
	// whose dispatcher rewrites the return slot. Slower (every return
	// mispredicts); kept so benchmarks can show why SiteMode is the default.
	// It refuses functions whose call would return outside their code.
	CallMode = dispatch.CallMode
)

// An Option changes how SetWith patches.
type Option func(*options)

type options struct {
	mode Mode
	scopeOpts
}

// WithMode selects the patch mode. A function keeps its mode while
// redirected: Reset it before changing mode.
func WithMode(m Mode) Option { return func(o *options) { o.mode = m } }

// Redirect describes one function Switchboard has patched.
type Redirect struct {
	Func   string  // the patched function
	Entry  uintptr // its entry address
	Tactic string  // how its prologue was patched (dispatch.Tactic)
	Mode   string  // "site" or "call"
	Site   uintptr // the relay site or stub its patch leads to
	Active bool    // redirected now (false after Reset)
	Target string  // the function calls go to now; the original when not active
	// Scope is which calls the patch applies to: "global", or a scoped
	// patch's "goroutine tree 3", "receiver 0xc000012345",
	// "instantiation pkg.F[int]", "closure 0xc000012345", or a
	// combination joined by " + ". List has one entry per patch.
	Scope string
	// SetAt is when the function was last redirected from its original;
	// Retargets counts the Sets that changed its target since.
	SetAt     time.Time
	Retargets int
}

func (r Redirect) String() string {
	state := "-> " + r.Target
	if !r.Active {
		state = "(original)"
	}
	return fmt.Sprintf("%s @%#x %s [%s, %s mode, %s, site %#x]", r.Func, r.Entry, state, r.Scope, r.Mode, r.Tactic, r.Site)
}

// record is the life-long state of one patched function.
type record struct {
	name  string
	entry unsafe.Pointer
	fn    dispatch.Func // original bytes, copied before the first patch
	// route is read by the dispatcher through the pointer in the relay
	// site; records live for ever in reg.byEntry, which keeps it reachable.
	route switchboard.Route

	patches [2]*dispatch.Patch // per mode, planned on first use, kept for ever
	planErr [2]error           // per mode, why planning failed
	mode    Mode
	active  bool
	written bool           // a patch took effect once: List reports it from then on
	plain   bool           // neither closure nor generic code: a retarget needs no analysis
	impl    unsafe.Pointer // funcval calls go to while active
	history                // when set, how often retargeted (List)

	// tramp runs the original body (Original), once planned; trampoline is
	// its funcval once installed; trampErr is why planning failed.
	tramp    *dispatch.Trampoline
	trampErr error
	// trampPlanErr is why planning the trampoline failed.
	trampPlanErr error
	trampoline   unsafe.Pointer
}

var reg struct {
	mu      sync.Mutex
	byEntry map[uintptr]*record
	planner *dispatch.Planner
}

func planner() *dispatch.Planner {
	if reg.planner == nil {
		reg.planner = dispatch.NewPlanner(dispatch.Process{}, switchboard.DispatcherPC(), switchboard.CallDispatcherPC())
		reg.planner.IsMorestack = func(pc uintptr) bool { return strings.HasPrefix(unwind.Name(pc), "runtime.morestack") }
		reg.planner.NilFault = switchboard.NilFaultPC()
		reg.planner.SlotDispatcher = switchboard.SlotDispatcherPC()
		reg.byEntry = map[uintptr]*record{}
	}
	return reg.planner
}

// Set redirects every call of fn, from any goroutine, to impl, until Reset.
//
// fn must be a top-level function or a method expression ((*T).M, T.M);
// calls through interfaces and func values reach the patch too. A closure
// value or a generic instantiation (pkg.F[int]) as fn is patched for that
// instance or instantiation only (see ForGoroutine for scopes). impl may be
// any func value of the same type: a function, a method value or a
// closure. Set(fn, fn) is Reset(fn).
//
// The first Set writes the patch with one atomic store; while fn stays
// redirected, a later Set is one atomic pointer store and rewrites no code.
// When Set returns, every call that starts on any thread goes to impl.
//
// A refused Set returns an *Error wrapping one of the Err* sentinels and
// changes nothing.
func Set[F any](fn, impl F) error { return SetWith(fn, impl) }

// SetWith is Set with options: WithMode, and the scopes ForGoroutine and
// ForReceiver, which patch only the calls of fn made from one goroutine
// tree or on one receiver (both together: only calls that are both).
//
// A function may hold many patches at once: a global one (Set) and any
// number of scoped ones, each removed by ResetWith with the same scope.
// Set of a closure value or of a generic instantiation is scoped by what
// fn is (calls of that closure instance, of that instantiation). When
// several patches match a call, the most specific wins:
//
//  1. a closure instance or an instantiation, with ForGoroutine before
//     without;
//  2. ForReceiver with ForGoroutine;
//  3. ForReceiver;
//  4. ForGoroutine;
//  5. the global patch.
//
// Patches of the same rank never both match a call: a call has one
// receiver, one closure context, and its goroutine one tree. A call no patch
// matches runs the original body, through the trampoline Original uses:
// a scoped patch is refused (ErrUnpatchable, with the reason) when fn has
// none. Scoped patches use site mode.
func SetWith[F any](fn, impl F, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := refuseUnsupported("Set", fn); err != nil {
		return err
	}
	if o.tree {
		if err := refuseTrees("Set", fn); err != nil {
			return err
		}
	}
	// The clock is read before the lock: a patch of time.Now must never
	// run while the registry is locked.
	now := time.Now()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, sc, err := identity("Set", fn)
	if err != nil {
		return err
	}
	fail := func(err error) error { return &Error{Op: "Set", Func: rec.name, Entry: uintptr(rec.entry), Err: err} }
	if err := sameType(fn, impl); err != nil {
		return fail(err)
	}
	fv := funcval(impl)
	if fv == nil {
		return fail(because(ErrNil, "impl is nil"))
	}
	if !sc.global() || o.scoped() {
		return setWithScope(rec, sc, reflect.TypeOf(fn), fv, &o)
	}
	code := *(*unsafe.Pointer)(fv)
	if code == rec.entry {
		return resetGlobal(rec, "Set")
	}
	if err := noCycle(rec, uintptr(code)); err != nil {
		return fail(err)
	}
	if rec.active && rec.mode == o.mode {
		rec.impl = fv
		rec.route.Store(fv)
		rec.noteRetarget(now)
		return nil
	}
	if rec.active {
		return fail(because(ErrModeConflict, "redirected in %v mode, asked for %v mode", rec.mode, o.mode))
	}
	if len(scoped.patches[rec]) > 0 {
		return globalOverGuards(rec, fv, o.mode, now, fail)
	}
	p, err := rec.patch(o.mode)
	if err != nil {
		return fail(codeWriteCause(err))
	}
	// The route leads to impl before any prologue leads to the route.
	prev := rec.route.Load()
	rec.route.Store(fv)
	if err := install(p, &rec.route); err != nil {
		rec.route.Store(prev)
		return fail(err)
	}
	_, orig, _ := p.Quad()
	written, err := p.Apply(rec.entry, orig)
	if written {
		rec.mode, rec.active, rec.impl, rec.written = o.mode, true, fv, true
		rec.noteSet(now)
	} else {
		// Nothing leads to the route: it may point back.
		rec.route.Store(prev)
	}
	return unfinished(fail, written, err)
}

// install is (*dispatch.Patch).Install; tests replace it to inject a
// failure.
var install = (*dispatch.Patch).Install

// unfinished reports an error from a code write. A write that took effect
// must not be reported as a refusal: state follows the code, and the error
// says what failed after it.
func unfinished(fail func(error) error, written bool, err error) error {
	switch {
	case err == nil:
		return nil
	case written:
		return fail(because(ErrUnfinished, "%v", err))
	}
	return fail(err)
}

// Reset removes every patch of fn, global and scoped (for a closure
// instance or an instantiation, every patch of it), and routes its calls
// to its original body again: it restores the original bytes with one
// atomic store, then points any call still on its way through the relay at
// the original. Reset of a function that is not redirected does nothing.
// ResetWith removes one scoped patch.
func Reset[F any](fn F) error {
	if err := refuseUnsupported("Reset", fn); err != nil {
		return err
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, sc, err := identity("Reset", fn)
	if err != nil {
		return err
	}
	return resetAll(rec, sc, "Reset")
}

func reset(rec *record, op string) error {
	if !rec.active {
		return nil
	}
	// Code first, route second: a call can never find the route pointing
	// at an entry that still jumps to the route.
	written, err := rec.patches[rec.mode].Restore(rec.entry)
	if written {
		rec.route.Store(nil)
		rec.active, rec.impl = false, nil
	}
	fail := func(err error) error { return &Error{Op: op, Func: rec.name, Entry: uintptr(rec.entry), Err: err} }
	return unfinished(fail, written, err)
}

// List reports every function Switchboard has patched, redirected now or
// not, sorted by name.
func List() []Redirect {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var out []Redirect
	for _, rec := range reg.byEntry {
		p := rec.patches[rec.mode]
		if p == nil || !rec.written {
			continue // no patch ever took effect
		}
		r := Redirect{
			Func: rec.name, Entry: uintptr(rec.entry), Tactic: p.Tactic.String(),
			Mode: rec.mode.String(), Site: p.Site, Active: rec.active, Target: rec.name,
			Scope: "global", SetAt: rec.setAt, Retargets: rec.retargets,
		}
		if rec.active {
			r.Target = unwind.Name(uintptr(*(*unsafe.Pointer)(rec.impl)))
		}
		out = append(out, r)
		out = append(out, scopedRows(rec, r)...)
	}
	out = append(out, listC()...)
	// Per function: the global patch, then the scoped ones, most specific first.
	slices.SortStableFunc(out, func(a, b Redirect) int { return strings.Compare(a.Func, b.Func) })
	return out
}

// patch returns the function's patch for mode, planning it on first use.
// A failed plan is kept: planning again would only fail again, and a plan
// rejected after its site was reserved would leak relay bytes each time.
func (rec *record) patch(mode Mode) (*dispatch.Patch, error) {
	if p := rec.patches[mode]; p != nil {
		return p, nil
	}
	if err := rec.planErr[mode]; err != nil {
		return nil, err
	}
	p, err := planner().Plan(rec.fn, mode)
	if err == nil {
		if verr := dispatch.Verify(rec.fn, p); verr != nil {
			err = because(ErrUnpatchable, "planned patch failed verification: %v", verr)
		}
	}
	if err != nil {
		rec.planErr[mode] = err
		return nil, err
	}
	rec.patches[mode] = p
	return p, nil
}

// funcval returns the data word of a func value: a pointer to its funcval,
// whose first word is the code. Func values are pointer-shaped, so any(v)
// holds that pointer directly, whether F is a func type or an interface.
func funcval[F any](v F) unsafe.Pointer {
	e := any(v)
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&e))[1]
}

func sameType[F any](fn, impl F) error {
	tf, ti := reflect.TypeOf(fn), reflect.TypeOf(impl)
	if ti == nil || ti.Kind() != reflect.Func {
		return because(ErrNotFunc, "impl is %v", ti)
	}
	if tf != ti {
		return because(ErrTypeMismatch, "fn is %v, impl is %v", tf, ti)
	}
	if reflect.ValueOf(impl).IsNil() {
		return because(ErrNil, "impl is nil")
	}
	return nil
}

// lookup validates fn and returns its record, creating it on first use.
// It runs every refusal that depends on fn alone.
func lookup[F any](op string, fn F) (*record, error) {
	fail := func(name string, entry uintptr, err error) (*record, error) {
		return nil, &Error{Op: op, Func: name, Entry: entry, Err: err}
	}
	t := reflect.TypeOf(fn)
	if t == nil {
		return fail("<nil>", 0, because(ErrNil, "fn is a nil interface"))
	}
	if t.Kind() != reflect.Func {
		return fail("<"+t.String()+">", 0, because(ErrNotFunc, "fn is a %v", t))
	}
	if reflect.ValueOf(fn).IsNil() {
		return fail("<nil "+t.String()+">", 0, because(ErrNil, "fn is a nil %v", t))
	}
	return recordAt(op, *(*unsafe.Pointer)(funcval(fn)), kind, t)
}

// recordAt returns the record of the code at entry, creating it on first
// use. rule refuses kinds of code by name (kind, for lookup).
func recordAt(op string, entry unsafe.Pointer, rule func(name string, bin names) error, t reflect.Type) (*record, error) {
	fail := func(name string, entry uintptr, err error) (*record, error) {
		return nil, &Error{Op: op, Func: name, Entry: entry, Err: err}
	}
	planner()
	if rec := reg.byEntry[uintptr(entry)]; rec != nil {
		im, err := imageAt(uintptr(entry))
		if err != nil {
			return fail(rec.name, uintptr(entry), err)
		}
		if err := rule(rec.name, im); err != nil {
			return fail(rec.name, uintptr(entry), err)
		}
		return rec, nil
	}
	im, err := imageAt(uintptr(entry))
	if err != nil {
		return fail(unwind.Name(uintptr(entry)), uintptr(entry), err)
	}
	f, ok := im.Lookup(uintptr(entry))
	name := unwind.Name(uintptr(entry))
	if strings.Contains(name, "[...]") && ok {
		name = f.Name // the runtime elides type arguments; the symbol has them
	}
	if !ok || f.Entry != uintptr(entry) {
		return fail(name, uintptr(entry), because(ErrNotEntry, "%#x is not a function entry", uintptr(entry)))
	}
	if err := checkCode(im, f, name, rule, t); err != nil {
		return fail(name, f.Entry, err)
	}
	live := unsafe.Slice((*byte)(entry), f.Room())
	rec := &record{
		name:  name,
		entry: entry,
		fn:    dispatch.Func{Name: name, Entry: f.Entry, Size: f.Size, Bytes: slices.Clone(live)},
		plain: kind(name, im) == nil,
	}
	// Until a trampoline exists, the original is the entry: the route is
	// only reached while the entry is patched, or by calls already on
	// their way after a Reset restored it.
	rec.route.SetOriginal(uintptr(entry))
	reg.byEntry[uintptr(entry)] = rec
	return rec, nil
}

// imageAt is the image of the Go module holding pc (the program, or a
// plugin), or the refusal: ErrUnsupported when the module's function table
// fails the check SelfCheck runs on the program's, ErrNotEntry when pc is
// no Go code of this process.
func imageAt(pc uintptr) (*unwind.Image, error) {
	im, err := unwind.ImageAt(pc)
	switch {
	case err == nil:
		return im, nil
	case errors.Is(err, unwind.ErrSelfCheck) && !errors.Is(err, unwind.ErrNotGo):
		return nil, because(ErrUnsupported, "%v", err)
	}
	return nil, because(ErrNotEntry, "%v", err)
}

// noCycle refuses a target that, following the redirects in force, leads
// back to rec: Set(a, b) while b is redirected to a. The redirects are
// followed through the code pointers of func values and through method
// values, whose x.M-fm wrapper leads to M (see cycles.go).
func noCycle(rec *record, code uintptr) error {
	var hops []string // the names on the way, for the error only
	var buf [8]uintptr
	seen := buf[:0]
	for !slices.Contains(seen, code) {
		seen = append(seen, code)
		if code == uintptr(rec.entry) {
			path := append(append([]string{rec.name}, hops...), rec.name)
			return because(ErrCycle, "%s", strings.Join(path, " -> "))
		}
		if m, name, ok := methodOfValue(code); ok {
			hops = append(hops, name)
			code = m
			continue
		}
		next := reg.byEntry[code]
		if next == nil || !next.active {
			return nil
		}
		hops = append(hops, next.name)
		code = uintptr(*(*unsafe.Pointer)(next.impl))
	}
	return nil
}
