package registry

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/dispatch"
)

// A Batch is a set of redirects applied together: Commit writes every
// staged patch or none, grouping the code writes by page, so that many
// patches cost one protection change and one core serialization per page
// instead of per function. Undo puts back what Commit changed.
//
//	b := registry.NewBatch()
//	err := registry.Stage(b, pkg.A, newA)
//	err = registry.Stage(b, pkg.B, newB)
//	err = b.Commit() // pkg.A and pkg.B redirected, or neither
//	err = b.Undo()   // both as they were before Commit
//
// A Batch is not safe for concurrent use; Commit and Undo are serialized
// with Set, Reset and List.
type Batch struct {
	staged  []change
	refused []*Error        // Stage refusals: Commit refuses the batch while any exist
	index   map[*record]int // staged entry of each function
	state   batchState
	before  []change // each committed function's state before Commit
}

type batchState int

const (
	batchOpen batchState = iota
	batchCommitted
	batchUndone
)

// change is one function's target state: redirected to impl, or not
// (impl nil).
type change struct {
	rec  *record
	impl unsafe.Pointer // funcval; nil = the original
	mode Mode
}

// ErrBatchState: Commit of a batch already committed, or Undo of one not
// committed (or already undone).
var ErrBatchState = errors.New("batch is not in a state for this")

// BatchError holds every function a Commit or Undo refused. errors.Is
// finds each one's sentinel through it.
type BatchError struct {
	Errs []*Error
}

func (e *BatchError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("%d refused: %s", len(e.Errs), strings.Join(parts, "; "))
}

// Unwrap returns each function's *Error.
func (e *BatchError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, err := range e.Errs {
		out[i] = err
	}
	return out
}

// NewBatch returns an empty batch.
func NewBatch() *Batch { return &Batch{index: map[*record]int{}} }

// Stage adds "redirect fn to impl" to the batch; nothing changes until
// Commit. It refuses at once, with an *Error, what Set refuses for fn and
// impl alone (a closure, an inlined or protected function, a type
// mismatch, ...), and the batch remembers it: Commit of a batch with a
// refused Stage is refused, naming it. What depends on the whole batch
// (cycles, relay room) is checked by Commit. Staging fn again replaces its impl; Stage(b, fn, fn)
// stages a Reset of fn.
//
// In a Go plugin, a func value of a program function may point at the
// plugin's own copy of it; Stage patches the program's copy, found by
// name, which is the one the program's calls run.
func Stage[F any](b *Batch, fn, impl F) error {
	if err := refuseUnsupported("Stage", fn); err != nil {
		return err
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if b == nil || b.index == nil {
		return &Error{Op: "Stage", Func: "<nil batch>", Err: because(ErrBatchState, "nil batch or not from NewBatch")}
	}
	fn = programCopy(fn)
	rec, err := lookup("Stage", fn)
	if err != nil {
		return b.refuse(err)
	}
	fail := func(err error) error {
		return b.refuse(&Error{Op: "Stage", Func: rec.name, Entry: uintptr(rec.entry), Err: err})
	}
	if b.state != batchOpen {
		return &Error{Op: "Stage", Func: rec.name, Entry: uintptr(rec.entry), Err: because(ErrBatchState, "batch already committed")}
	}
	if err := sameType(fn, impl); err != nil {
		return fail(err)
	}
	fv := funcval(impl)
	if fv == nil {
		return fail(because(ErrNil, "impl is nil"))
	}
	c := change{rec: rec, impl: fv, mode: SiteMode}
	if *(*unsafe.Pointer)(fv) == rec.entry {
		c.impl = nil
	}
	if i, ok := b.index[rec]; ok {
		b.staged[i] = c
		return nil
	}
	b.index[rec] = len(b.staged)
	b.staged = append(b.staged, c)
	return nil
}

// refuse keeps a Stage refusal for Commit and returns it.
func (b *Batch) refuse(err error) error {
	if e, ok := err.(*Error); ok && b.state == batchOpen {
		b.refused = append(b.refused, e)
	}
	return err
}

// Len returns how many functions are staged.
func (b *Batch) Len() int { return len(b.staged) }

// Commit applies every staged redirect, or none. A refusal is an *Error
// wrapping a *BatchError that names every function refused (errors.Is
// finds each sentinel): the Stages refused, or else every function Commit
// refuses; nothing changes then: code, List and behaviour are as before. The one exception, as for Set, is ErrUnfinished: every
// code store took effect and a step after them failed.
//
// Relay sites are written and routes pointed at their new targets before
// any prologue is written. Code writes are grouped by page: one RWX, the
// stores, one RX per page, then one core serialization. A call running
// during Commit sees, for each function, its old target or its new one.
func (b *Batch) Commit() error {
	if b == nil || b.index == nil {
		return &Error{Op: "Commit", Func: "<nil batch>", Err: because(ErrBatchState, "nil batch or not from NewBatch")}
	}
	if err := supported(); err != nil {
		return &Error{Op: "Commit", Func: "batch", Err: err}
	}
	now := time.Now() // before the lock: a patch of time.Now must not run under it
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if b.state != batchOpen {
		return &Error{Op: "Commit", Func: "batch", Err: because(ErrBatchState, "already committed")}
	}
	if len(b.refused) > 0 {
		// The batch is all or nothing: what Stage refused makes it nothing.
		return batchRefusal("Commit", b.refused)
	}
	before := make([]change, len(b.staged))
	for i, c := range b.staged {
		before[i] = c.rec.current()
	}
	err := transition("Commit", b.staged, now)
	if err == nil || errors.Is(err, ErrUnfinished) {
		b.state, b.before = batchCommitted, before
	}
	return err
}

// Undo puts every function Commit changed back in the state it had before
// Commit (redirected to its earlier target, or not redirected), all or
// nothing, grouped by page as Commit is. It overrides any Set or Reset of
// those functions made since.
func (b *Batch) Undo() error {
	if b == nil || b.index == nil {
		return &Error{Op: "Undo", Func: "<nil batch>", Err: because(ErrBatchState, "nil batch or not from NewBatch")}
	}
	if err := supported(); err != nil {
		return &Error{Op: "Undo", Func: "batch", Err: err}
	}
	now := time.Now()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if b.state != batchCommitted {
		return &Error{Op: "Undo", Func: "batch", Err: because(ErrBatchState, "not committed, or already undone")}
	}
	err := transition("Undo", b.before, now)
	if err == nil || errors.Is(err, ErrUnfinished) {
		b.state = batchUndone
	}
	return err
}

// current returns the record's state as a change.
func (rec *record) current() change {
	if !rec.active {
		return change{rec: rec, mode: SiteMode}
	}
	return change{rec: rec, impl: rec.impl, mode: rec.mode}
}

// transition brings every function to its target state, or none.
// reg.mu is held.
func transition(op string, want []change, now time.Time) error {
	var refused []*Error
	refuse := func(rec *record, err error) {
		refused = append(refused, &Error{Op: op, Func: rec.name, Entry: uintptr(rec.entry), Err: err})
	}
	// What each function's code jumps to once the batch is in: for the
	// cycle check, the records in force overlaid with the batch.
	final := map[uintptr]uintptr{}
	for _, c := range want {
		if c.impl != nil {
			final[uintptr(c.rec.entry)] = uintptr(*(*unsafe.Pointer)(c.impl))
		} else {
			final[uintptr(c.rec.entry)] = 0
		}
	}
	var patch, unpatch, retarget []change
	for _, c := range want {
		rec := c.rec
		switch {
		case c.impl == nil && rec.active:
			unpatch = append(unpatch, c)
		case c.impl == nil:
		case rec.active && rec.mode != c.mode:
			refuse(rec, because(ErrModeConflict, "redirected in %v mode, asked for %v mode", rec.mode, c.mode))
		default:
			if err := cycleFree(rec, final); err != nil {
				refuse(rec, err)
				continue
			}
			if rec.active {
				retarget = append(retarget, c)
			} else {
				patch = append(patch, c)
			}
		}
	}
	// Plan what has no patch yet, reading the address space once per mode.
	for _, mode := range []Mode{SiteMode, CallMode} {
		var fs []dispatch.Func
		var need []*record
		for _, c := range patch {
			if c.mode == mode && c.rec.patches[mode] == nil && c.rec.planErr[mode] == nil {
				fs = append(fs, c.rec.fn)
				need = append(need, c.rec)
			}
		}
		if len(fs) == 0 {
			continue
		}
		ps, errs := planner().PlanAll(fs, mode)
		for i, rec := range need {
			if errs[i] == nil {
				if verr := dispatch.Verify(rec.fn, ps[i]); verr != nil {
					errs[i] = because(ErrUnpatchable, "planned patch failed verification: %v", verr)
				}
			}
			if errs[i] != nil {
				rec.planErr[mode] = errs[i]
			} else {
				rec.patches[mode] = ps[i]
			}
		}
	}
	for _, c := range patch {
		if err := c.rec.planErr[c.mode]; err != nil {
			refuse(c.rec, err)
		}
	}
	if len(refused) > 0 {
		return batchRefusal(op, refused)
	}

	// Routes lead to the new targets before any prologue leads to a route.
	ps := make([]*dispatch.Patch, len(patch))
	routes := make([]*switchboard.Route, len(patch))
	prev := make([]unsafe.Pointer, len(patch))
	for i, c := range patch {
		ps[i], routes[i] = c.rec.patches[c.mode], &c.rec.route
		prev[i] = c.rec.route.Load()
		c.rec.route.Store(c.impl)
	}
	back := func() {
		for i, c := range patch {
			c.rec.route.Store(prev[i])
		}
	}
	if err := dispatch.InstallAll(ps, routes); err != nil {
		back()
		return batchRefusal(op, []*Error{{Op: op, Func: "relay sites", Err: err}})
	}
	swaps := make([]dispatch.QuadSwap, 0, len(patch)+len(unpatch))
	for i, c := range patch {
		w, err := ps[i].Swap(c.rec.entry, false)
		if err != nil {
			back()
			return batchRefusal(op, []*Error{{Op: op, Func: c.rec.name, Entry: uintptr(c.rec.entry), Err: err}})
		}
		swaps = append(swaps, w)
	}
	for _, c := range unpatch {
		w, err := c.rec.patches[c.rec.mode].Swap(c.rec.entry, true)
		if err != nil {
			back()
			return batchRefusal(op, []*Error{{Op: op, Func: c.rec.name, Entry: uintptr(c.rec.entry), Err: err}})
		}
		swaps = append(swaps, w)
	}
	written, err := dispatch.SwapQuads(swaps)
	if !written {
		back()
		return batchRefusal(op, []*Error{{Op: op, Func: fmt.Sprintf("%d functions", len(swaps)), Err: err}})
	}
	for _, c := range patch {
		c.rec.mode, c.rec.active, c.rec.impl, c.rec.written = c.mode, true, c.impl, true
		c.rec.noteSet(now)
	}
	// Code first, route second, as in Reset.
	for _, c := range unpatch {
		c.rec.route.Store(nil)
		c.rec.active, c.rec.impl = false, nil
	}
	for _, c := range retarget {
		c.rec.impl = c.impl
		c.rec.route.Store(c.impl)
		c.rec.noteRetarget(now)
	}
	if err != nil {
		return &Error{Op: op, Func: fmt.Sprintf("%d functions", len(swaps)), Err: because(ErrUnfinished, "%v", err)}
	}
	return nil
}

// cycleFree is noCycle against the state after the batch: final maps the
// entry of every function in the batch to the code it will jump to (0 for
// the original).
func cycleFree(rec *record, final map[uintptr]uintptr) error {
	path := []string{rec.name}
	code := final[uintptr(rec.entry)]
	for seen := map[uintptr]bool{}; !seen[code]; {
		seen[code] = true
		if code == uintptr(rec.entry) {
			return because(ErrCycle, "%s", strings.Join(append(path, rec.name), " -> "))
		}
		next := reg.byEntry[code]
		if next == nil {
			return nil
		}
		to, inBatch := final[code]
		switch {
		case inBatch && to == 0:
			return nil
		case inBatch:
			code = to
		case next.active:
			code = uintptr(*(*unsafe.Pointer)(next.impl))
		default:
			return nil
		}
		path = append(path, next.name)
	}
	return nil
}

// batchRefusal is the *Error of a refused Commit or Undo: it names every
// function refused and wraps them all.
func batchRefusal(op string, refused []*Error) error {
	names := make([]string, len(refused))
	for i, e := range refused {
		names[i] = e.Func
	}
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(refused)-5))
	}
	return &Error{Op: op, Func: strings.Join(names, ", "), Err: &BatchError{Errs: refused}}
}
