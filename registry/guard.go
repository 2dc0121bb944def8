package registry

import (
	"context"
	"fmt"
	"reflect"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/unwind"
)

// Scoped patches ("guards"). A scoped patch redirects only some calls of a
// function: those of one goroutine tree, one receiver, one instantiation of
// a generic function or one closure instance. The patched entry leads to
// the dispatcher, which compares the call's registers with each guard of
// the function's route, most specific first, and takes the first that
// matches; a call no guard matches takes the global patch if there is one,
// else runs the original through the function's trampoline. The guards
// are kept in SetWith's order of specificity, from the rank of each scope.

// ForGoroutine scopes a patch to the goroutine tree of the goroutine that
// calls SetWith or ResetWith: that goroutine and every goroutine it, or
// they, start afterwards.
//
// The tree is identified by the goroutine's profiler labels
// (runtime/pprof), which goroutines inherit when they start: SetWith gives
// the calling goroutine a fresh label set, its labels plus
// "switchboard"="tree-N", unless it already belongs to a tree. So:
//
//   - goroutines started before the SetWith are not in the tree;
//   - a goroutine in the tree that replaces its labels (pprof.Do,
//     pprof.SetGoroutineLabels) leaves it, and so do the goroutines it
//     starts then; pprof.Do, on return, sets the labels of its ctx
//     argument, which are not the tree's, so the goroutine stays out;
//   - each tree keeps its label set alive for the life of the process
//     (about 100 bytes), so that its address is never reused.
//
// The label word's place in the runtime's goroutine record is found and
// checked on the running toolchain before the first tree; where the check
// fails, SetWith with ForGoroutine returns ErrUnsupported.
func ForGoroutine() Option { return func(o *options) { o.tree = true } }

// ForReceiver scopes a patch of a method to calls whose receiver is p: the
// method expression (*T).M with p a *T (the receiver pointer arrives in
// RAX). A nil p, a p that is not a pointer and a p of another type than
// fn's receiver are refused.
func ForReceiver(p any) Option {
	return func(o *options) {
		o.recv = true
		v := reflect.ValueOf(p)
		switch {
		case p == nil:
			o.recvErr = because(ErrNil, "ForReceiver(nil)")
		case v.Kind() != reflect.Pointer:
			o.recvErr = because(ErrTypeMismatch, "ForReceiver needs a pointer receiver, got a %v; patch value-receiver methods globally", v.Type())
		case v.IsNil():
			o.recvErr = because(ErrNil, "ForReceiver of a nil %v", v.Type())
		default:
			o.recvType, o.recvPtr = v.Type(), v.UnsafePointer()
		}
	}
}

// scopeOpts are the scope options of SetWith and ResetWith.
type scopeOpts struct {
	tree     bool
	recv     bool
	recvErr  error
	recvType reflect.Type
	recvPtr  unsafe.Pointer
}

// A scope is the set of calls one patch applies to. The zero scope is
// global. keep holds what the compared words point to, so that their
// addresses are never reused while a guard compares them.
type scope struct {
	rax, rbx, rdx uintptr
	tree          *tree
	keep          unsafe.Pointer
	dict          bool   // a generic dictionary: calls carry it before the arguments
	dictAt        int    // its integer register: 0 (rax, a function's) or 1 (rbx, a method's)
	what          string // "receiver 0x...", "instantiation p.F[int]", "closure 0x..."
	rank          int    // specificity: higher is more specific
}

const (
	rankTree     = 1
	rankReceiver = 2
	rankIdentity = 4 // a closure instance or an instantiation
)

func (s scope) global() bool { return s.rax == 0 && s.rbx == 0 && s.rdx == 0 && s.tree == nil }

func (s scope) same(t scope) bool {
	return s.rax == t.rax && s.rbx == t.rbx && s.rdx == t.rdx && s.tree == t.tree
}

func (s scope) label() uintptr {
	if s.tree == nil {
		return 0
	}
	return s.tree.word
}

func (s scope) String() string {
	var parts []string
	if s.what != "" {
		parts = append(parts, s.what)
	}
	if s.tree != nil {
		parts = append(parts, fmt.Sprintf("goroutine tree %d", s.tree.id))
	}
	if len(parts) == 0 {
		return "global"
	}
	return strings.Join(parts, " + ")
}

// A tree is one goroutine tree: the label set its goroutines share.
type tree struct {
	id   int
	word uintptr
	ctx  context.Context // holds the label set, so word stays unique
}

// scopedPatch is one scoped patch of a record.
type scopedPatch struct {
	scope  scope
	impl   unsafe.Pointer // funcval of the replacement
	target unsafe.Pointer // funcval the guard sends calls to: impl, or an adapter to it
}

// scoped holds the scoped patches of each record, most specific first, and
// the goroutine trees by label word. Guarded by reg.mu.
var scoped struct {
	patches map[*record][]scopedPatch
	trees   map[uintptr]*tree
}

// identity resolves what fn names: a plain function (zero scope), or the
// code and scope of a closure instance or a generic instantiation. It runs
// lookup's refusals on the code that is patched.
func identity[F any](op string, fn F) (*record, scope, error) {
	t := reflect.TypeOf(fn)
	if t == nil || t.Kind() != reflect.Func || reflect.ValueOf(fn).IsNil() {
		rec, err := lookup(op, fn)
		return rec, scope{}, err
	}
	fv := funcval(fn)
	entry := *(*unsafe.Pointer)(fv)
	if rec := reg.byEntry[uintptr(entry)]; rec != nil && rec.plain {
		// Known plain code passed every check of lookup when its record
		// was made: a retarget pays for none of them again.
		return rec, scope{}, nil
	}
	name := unwind.Name(uintptr(entry))
	im, err := unwind.ImageAt(uintptr(entry)) // the program's, or a plugin's
	if err != nil {
		rec, err := lookup(op, fn) // refuses
		return rec, scope{}, err
	}
	tg, err := targetOf(im, name, uintptr(entry), func(f unwind.Func) ([]byte, error) {
		return unsafe.Slice((*byte)(entry), f.Size), nil
	})
	if err != nil {
		return nil, scope{}, &Error{Op: op, Func: name, Entry: uintptr(entry), Err: err}
	}
	switch {
	case tg.closure:
		rec, err := recordAt(op, entry, allowClosure, t)
		if err != nil {
			return nil, scope{}, err
		}
		if static(fv, im) {
			// A literal that captures nothing is one static funcval:
			// every evaluation of it is this value, and direct calls
			// of it need not pass it in RDX. Its patch is global.
			return rec, scope{}, nil
		}
		return rec, scope{rdx: uintptr(fv), keep: fv, what: fmt.Sprintf("closure %#x", uintptr(fv)), rank: rankIdentity}, nil
	case tg.inst != nil:
		inst := *tg.inst
		at, err := dictIndex(inst, t)
		if err != nil {
			return nil, scope{}, &Error{Op: op, Func: inst.name, Entry: uintptr(entry), Err: err}
		}
		if !dictFits(t) {
			return nil, scope{}, &Error{Op: op, Func: inst.name, Entry: uintptr(entry), Err: because(ErrGeneric, "with the dictionary among them, its arguments no longer all fit in registers, which a replacement of type %v needs", t)}
		}
		rec, err := recordAt(op, unsafe.Add(entry, int(inst.shape)-int(uintptr(entry))), allowGeneric, t)
		if err != nil {
			return nil, scope{}, err
		}
		dict := unsafe.Add(entry, int(inst.dict)-int(uintptr(entry)))
		s := scope{dict: true, dictAt: at, keep: dict, what: "instantiation " + inst.name, rank: rankIdentity}
		if at == 0 {
			s.rax = inst.dict
		} else {
			s.rbx = inst.dict
		}
		return rec, s, nil
	}
	rec, err := lookup(op, fn)
	return rec, scope{}, err
}

// static reports whether a funcval lives in the data of im, the module of
// its code, rather than in the heap or on a stack: the funcval of a literal
// without captures.
func static(fv unsafe.Pointer, im *unwind.Image) bool {
	for _, r := range im.Loads() {
		if uintptr(fv) >= r.Start && uintptr(fv) < r.End {
			return true
		}
	}
	return false
}

// allowClosure and allowGeneric are lookup's kind rule with one kind let
// through, for code that identity has given a scope.
func allowClosure(name string, bin names) error {
	if err := kind(name, bin); err != ErrClosure {
		return err
	}
	return nil
}

func allowGeneric(name string, bin names) error {
	if err := kind(name, bin); err != ErrGeneric {
		return err
	}
	return nil
}

// withOptions adds the scope options to the scope identity resolved: the
// receiver is checked against fn's type, the goroutine tree is looked up
// (join: created for the calling goroutine when it has none).
func withOptions(s scope, o *options, fnType reflect.Type, join bool) (scope, func(), error) {
	undo := func() {}
	if o.recv {
		if o.recvErr != nil {
			return s, undo, o.recvErr
		}
		if s.dict && s.dictAt == 0 {
			return s, undo, because(ErrGeneric, "ForReceiver of a generic function's instantiation: its dictionary, not a receiver, is in RAX")
		}
		if fnType.NumIn() == 0 || fnType.In(0) != o.recvType {
			return s, undo, because(ErrTypeMismatch, "ForReceiver(%v) for a %v: the first parameter must be the receiver's type", o.recvType, fnType)
		}
		if s.keep != nil {
			// A closure instance or a method's dictionary, and the
			// receiver: keep both alive.
			s.keep = unsafe.Pointer(&[2]unsafe.Pointer{s.keep, o.recvPtr})
		} else {
			s.keep = o.recvPtr
		}
		s.rax = uintptr(o.recvPtr)
		recv := fmt.Sprintf("receiver %#x", uintptr(o.recvPtr))
		if s.what != "" {
			recv = s.what + " + " + recv
		}
		s.what = recv
		s.rank += rankReceiver
	}
	if o.tree {
		off, err := labelOffset()
		if err != nil {
			return s, undo, err
		}
		if scoped.trees == nil {
			scoped.trees = map[uintptr]*tree{}
		}
		t := scoped.trees[labelWordAt(off)]
		if t == nil && join {
			var err error
			if t, undo, err = joinTree(off); err != nil {
				return s, func() {}, err
			}
		}
		if t == nil {
			return s, undo, errNoTree
		}
		switchboard.SetLabelOffset(off)
		s.tree, s.rank = t, s.rank+rankTree
	}
	return s, undo, nil
}

// errNoTree: ResetWith(fn, ForGoroutine()) from a goroutine in no tree.
var errNoTree = fmt.Errorf("not in a goroutine tree")

// joinTree gives the calling goroutine a fresh label set, its labels plus
// the tree's, and returns the tree and how to put the labels back.
func joinTree(off uintptr) (*tree, func(), error) {
	kv, err := labelList(off)
	if err != nil {
		return nil, nil, err
	}
	id := len(scoped.trees) + 1
	ctx := pprof.WithLabels(context.Background(), pprof.Labels(append(slices.Clone(kv), treeKey, fmt.Sprintf("tree-%d", id))...))
	pprof.SetGoroutineLabels(ctx)
	t := &tree{id: id, word: labelWordAt(off), ctx: ctx}
	scoped.trees[t.word] = t
	undo := func() {
		delete(scoped.trees, t.word)
		before := context.Background() // no labels: the word back to nil
		if len(kv) > 0 {
			before = pprof.WithLabels(before, pprof.Labels(kv...))
		}
		pprof.SetGoroutineLabels(before)
	}
	return t, undo, nil
}

// entryPatched reports whether rec's entry leads to its route: a global
// patch or any scoped one.
func entryPatched(rec *record) bool { return rec.active || len(scoped.patches[rec]) > 0 }

// publish hands the route rec's guards, most specific first.
func publish(rec *record) {
	ps := scoped.patches[rec]
	if len(ps) == 0 {
		rec.route.SetGuards(nil)
		return
	}
	gs := make([]switchboard.Guard, len(ps))
	for i, p := range ps {
		gs[i] = switchboard.Guard{RAX: p.scope.rax, RBX: p.scope.rbx, RDX: p.scope.rdx, Label: p.scope.label(), Target: p.target}
	}
	rec.route.SetGuards(gs)
}

// setScoped installs or retargets the scoped patch s of rec to fv.
func setScoped(op string, rec *record, s scope, fv unsafe.Pointer, mode Mode, undo func()) error {
	fail := func(err error) error {
		undo()
		return &Error{Op: op, Func: rec.name, Entry: uintptr(rec.entry), Err: err}
	}
	if mode != SiteMode {
		return fail(because(ErrModeConflict, "scoped patches use site mode"))
	}
	if rec.active && rec.mode != SiteMode {
		return fail(because(ErrModeConflict, "redirected in %v mode; scoped patches use site mode", rec.mode))
	}
	if err := noCycle(rec, uintptr(*(*unsafe.Pointer)(fv))); err != nil {
		return fail(err)
	}
	target := fv
	if s.dict {
		target = switchboard.DropDictionary(fv, s.dictAt)
	}
	ps := scoped.patches[rec]
	if i := slices.IndexFunc(ps, func(p scopedPatch) bool { return p.scope.same(s) }); i >= 0 {
		ps[i].impl, ps[i].target = fv, target
		publish(rec)
		return nil
	}
	// Calls no guard matches run the original: the trampoline.
	if err := rec.installTrampoline(); err != nil {
		return fail(because(ErrUnpatchable, "a scoped patch sends the calls it does not match to the original, and there is none: %v", err))
	}
	next := slices.Clone(ps)
	at := slices.IndexFunc(next, func(p scopedPatch) bool { return p.scope.rank < s.rank })
	if at < 0 {
		at = len(next)
	}
	next = slices.Insert(next, at, scopedPatch{scope: s, impl: fv, target: target})
	if scoped.patches == nil {
		scoped.patches = map[*record][]scopedPatch{}
	}
	if entryPatched(rec) {
		scoped.patches[rec] = next
		publish(rec)
		return nil
	}
	// The route leads to the guards and the original before the entry
	// leads to the route.
	p, err := rec.patch(SiteMode)
	if err != nil {
		return fail(err)
	}
	scoped.patches[rec] = next
	publish(rec)
	if err := p.Install(&rec.route); err != nil {
		scoped.patches[rec] = ps
		publish(rec)
		return fail(err)
	}
	_, orig, _ := p.Quad()
	written, err := p.Apply(rec.entry, orig)
	if written {
		rec.mode, rec.written = SiteMode, true
	} else {
		scoped.patches[rec] = ps
		publish(rec)
	}
	if err == nil {
		return nil
	}
	if written {
		return &Error{Op: op, Func: rec.name, Entry: uintptr(rec.entry), Err: because(ErrUnfinished, "%v", err)}
	}
	return fail(err)
}

// resetScoped removes the scoped patches of rec that match, restoring the
// original code when no patch is left.
func resetScoped(op string, rec *record, match func(scope) bool) error {
	ps := scoped.patches[rec]
	keep := slices.DeleteFunc(slices.Clone(ps), func(p scopedPatch) bool { return match(p.scope) })
	if len(keep) == len(ps) {
		return nil
	}
	if len(keep) > 0 || rec.active {
		scoped.patches[rec] = keep
		publish(rec)
		return nil
	}
	// Code first, guards second, as in reset.
	written, err := rec.patches[SiteMode].Restore(rec.entry)
	if written {
		delete(scoped.patches, rec)
		publish(rec)
	}
	fail := func(err error) error { return &Error{Op: op, Func: rec.name, Entry: uintptr(rec.entry), Err: err} }
	return unfinished(fail, written, err)
}

// ResetWith removes the patch of fn whose scope the options name (a
// closure instance or an instantiation names its own): with no options,
// the global patch only, leaving scoped patches in force. Removing what is
// not there does nothing. Reset(fn) removes every patch of fn.
func ResetWith[F any](fn F, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := refuseUnsupported("Reset", fn); err != nil {
		return err
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, s, err := identity("Reset", fn)
	if err != nil {
		return err
	}
	s, _, err = withOptions(s, &o, reflect.TypeOf(fn), false)
	if err == errNoTree {
		return nil
	}
	if err != nil {
		return &Error{Op: "Reset", Func: rec.name, Entry: uintptr(rec.entry), Err: err}
	}
	if s.global() {
		return resetGlobal(rec, "Reset")
	}
	return resetScoped("Reset", rec, s.same)
}

// resetGlobal removes the global patch of rec and leaves its scoped patches.
func resetGlobal(rec *record, op string) error {
	if !rec.active || len(scoped.patches[rec]) == 0 {
		return reset(rec, op)
	}
	rec.route.Store(nil)
	rec.active, rec.impl = false, nil
	return nil
}

// resetAll is Reset: every patch of what fn names. For a closure instance
// or an instantiation, that is every patch with its identity.
func resetAll(rec *record, s scope, op string) error {
	if !s.global() {
		return resetScoped(op, rec, func(t scope) bool {
			return (s.rax == 0 || t.rax == s.rax) && (s.rbx == 0 || t.rbx == s.rbx) && (s.rdx == 0 || t.rdx == s.rdx)
		})
	}
	if len(scoped.patches[rec]) > 0 {
		// The global target, if any, keeps the entry patched meanwhile.
		if err := resetScoped(op, rec, func(scope) bool { return true }); err != nil {
			return err
		}
		if !rec.active {
			return nil
		}
	}
	return reset(rec, op)
}

// scopedRows are List's rows for the scoped patches of rec, given its
// global row.
func scopedRows(rec *record, global Redirect) []Redirect {
	var out []Redirect
	for _, p := range scoped.patches[rec] {
		r := global
		r.Active, r.Scope = true, p.scope.String()
		r.Target = unwind.Name(uintptr(*(*unsafe.Pointer)(p.impl)))
		out = append(out, r)
	}
	return out
}

// scoped reports whether the options name a scope.
func (o *scopeOpts) scoped() bool { return o.tree || o.recv }

// setWithScope is SetWith of a scoped patch: s is what fn itself names (a
// closure instance, an instantiation, or nothing), the options add the
// rest.
func setWithScope(rec *record, s scope, fnType reflect.Type, fv unsafe.Pointer, o *options) error {
	fail := func(err error) error { return &Error{Op: "Set", Func: rec.name, Entry: uintptr(rec.entry), Err: err} }
	if *(*unsafe.Pointer)(fv) == rec.entry {
		// SetWith(fn, fn, scope) is ResetWith(fn, scope).
		s, _, err := withOptions(s, o, fnType, false)
		if err == errNoTree {
			return nil
		}
		if err != nil {
			return fail(err)
		}
		return resetScoped("Set", rec, s.same)
	}
	if o.mode != SiteMode {
		return fail(because(ErrModeConflict, "scoped patches use site mode"))
	}
	s, undo, err := withOptions(s, o, fnType, true)
	if err != nil {
		return fail(err)
	}
	return setScoped("Set", rec, s, fv, o.mode, undo)
}

// globalOverGuards is a global Set of a function whose entry its scoped
// patches already lead to the route: one pointer store.
func globalOverGuards(rec *record, fv unsafe.Pointer, mode Mode, now time.Time, fail func(error) error) error {
	if mode != SiteMode {
		return fail(because(ErrModeConflict, "scoped patches use site mode, asked for %v mode", mode))
	}
	rec.impl = fv
	rec.route.Store(fv)
	rec.active = true
	rec.noteSet(now)
	return nil
}
