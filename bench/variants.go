package bench

import (
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/switchboard-go/switchboard/registry"
)

// target is what every variant ends up running.
//
//go:noinline
func target(x int) int { return x*3 + 1 }

// One victim per patching technique, so patches never overlap. Each has the
// standard stack-check prologue of a function that calls another, the
// common case.

//go:noinline
func victimSite(x int) int { return helper(x) }

//go:noinline
func victimCall(x int) int { return helper(x) + 1 }

//go:noinline
func victimSlot(x int) int { return helper(x) + 2 }

//go:noinline
func helper(x int) int { return x - 1 }

var funcVar = target

type applier interface{ Apply(int) int }

type impl struct{}

//go:noinline
func (impl) Apply(x int) int { return x*3 + 1 }

var iface applier = impl{}

// Each loop makes n calls through one technique. They are separate
// functions so that each call site is the simplest possible.

//go:noinline
func loopDirect(n int) (s int) {
	for i := range n {
		s += target(i)
	}
	return s
}

//go:noinline
func loopSite(n int) (s int) {
	for i := range n {
		s += victimSite(i)
	}
	return s
}

//go:noinline
func loopCall(n int) (s int) {
	for i := range n {
		s += victimCall(i)
	}
	return s
}

//go:noinline
func loopSlot(n int) (s int) {
	for i := range n {
		s += victimSlot(i)
	}
	return s
}

//go:noinline
func loopFuncVar(n int) (s int) {
	for i := range n {
		s += funcVar(i)
	}
	return s
}

//go:noinline
func loopIface(n int) (s int) {
	for i := range n {
		s += iface.Apply(i)
	}
	return s
}

// The guarded victims compute what target computes, so that a call that
// falls through to the original does the same work as one that matches.
// guarded.victim is a method, so a receiver can scope its patch: only gv's
// calls match, gvOther's run the original through its trampoline.
type guarded struct{ _ int }

//go:noinline
func (*guarded) victim(x int) int { return x*3 + 1 }

//go:noinline
func victimTree(x int) int { return x*3 + 1 }

var gv, gvOther = &guarded{}, &guarded{}

//go:noinline
func loopGuardHit(n int) (s int) {
	for i := range n {
		s += gv.victim(i)
	}
	return s
}

//go:noinline
func loopGuardMiss(n int) (s int) {
	for i := range n {
		s += gvOther.victim(i)
	}
	return s
}

//go:noinline
func loopGuardTree(n int) (s int) {
	for i := range n {
		s += victimTree(i)
	}
	return s
}

// gen's methods are patched per instantiation: gen[int] and gen[myInt]
// share a shape function, whose guard compares the dictionary in RBX.
type gen[T any] struct{ _ T }

//go:noinline
func (*gen[T]) victim(x int) int { return x*3 + 1 }

var gi = &gen[int]{}

//go:noinline
func loopGuardGeneric(n int) (s int) {
	for i := range n {
		s += gi.victim(i)
	}
	return s
}

// genImpl is target with gen[int].victim's signature.
//
//go:noinline
func genImpl(_ *gen[int], x int) int { return x*3 + 1 }

func genSetup() (func() error, error) {
	return func() error { return registry.Reset((*gen[int]).victim) }, registry.Set((*gen[int]).victim, genImpl)
}

// guardImpl is target with the method's signature.
//
//go:noinline
func guardImpl(_ *guarded, x int) int { return x*3 + 1 }

// guardSetup scopes victim's patch to gv (the receiver guard's variants) or
// victimTree's to the calling goroutine's tree.
func guardSetup(tree bool) func() (func() error, error) {
	return func() (func() error, error) {
		if tree {
			return func() error { return registry.Reset(victimTree) },
				registry.SetWith(victimTree, target, registry.ForGoroutine())
		}
		return func() error { return registry.Reset((*guarded).victim) },
			registry.SetWith((*guarded).victim, guardImpl, registry.ForReceiver(gv))
	}
}

// Variant is one way of calling target.
type Variant struct {
	Name string
	// Setup patches what the variant needs and returns its undo.
	Setup func() (undo func() error, err error)
	Loop  func(n int) int
}

func nothing() (func() error, error) { return func() error { return nil }, nil }

// Variants lists the variants in report order; the first is the baseline.
func Variants() []Variant { return slices.Clone(variants) }

var variants = []Variant{
	{"direct", nothing, loopDirect},
	{"site mode", func() (func() error, error) {
		return func() error { return registry.Reset(victimSite) }, registry.Set(victimSite, target)
	}, loopSite},
	{"call mode", func() (func() error, error) {
		return func() error { return registry.Reset(victimCall) },
			registry.SetWith(victimCall, target, registry.WithMode(registry.CallMode))
	}, loopCall},
	{"per-slot 12-byte patch", slotPatch, loopSlot},
	{"func variable", nothing, loopFuncVar},
	{"interface", nothing, loopIface},
	{"guard: receiver, matches", guardSetup(false), loopGuardHit},
	{"guard: receiver, falls through to the original", guardSetup(false), loopGuardMiss},
	{"guard: goroutine tree, matches", guardSetup(true), loopGuardTree},
	{"guard: generic method instantiation, matches", genSetup, loopGuardGeneric},
}

// Ratio times n calls of v and of the direct call, interleaved in chunks so
// that both see the same machine, and returns v's ns per call and its ratio
// to the direct call.
func Ratio(v Variant, n int) (nsPerCall, ratio float64) {
	const chunk = 1 << 16
	var direct, variant time.Duration
	sum := 0
	for done := 0; done < n; done += chunk {
		k := min(chunk, n-done)
		t0 := time.Now()
		sum += loopDirect(k)
		t1 := time.Now()
		sum += v.Loop(k)
		direct += t1.Sub(t0)
		variant += time.Since(t1)
	}
	sink = sum
	return float64(variant) / float64(n), float64(variant) / float64(direct)
}

// MinRatio times n calls of v and of the direct call in alternating chunks
// of 4,096 calls and returns the ratio of the fastest chunk of v to the
// fastest direct chunk. On a shared machine a chunk that the scheduler
// interrupts only ever gets slower, so the minima, unlike the sums Ratio
// takes, hardly move with the load.
func MinRatio(v Variant, n int) float64 {
	const chunk = 1 << 12
	direct, variant := time.Duration(1<<62), time.Duration(1<<62)
	sum := 0
	for done := 0; done < n; done += chunk {
		t0 := time.Now()
		sum += loopDirect(chunk)
		t1 := time.Now()
		sum += v.Loop(chunk)
		direct, variant = min(direct, t1.Sub(t0)), min(variant, time.Since(t1))
	}
	sink = sum
	return float64(variant) / float64(direct)
}

// sink keeps results alive.
var sink int

// Check runs every variant once, after Setup, and reports one that does not
// compute what the direct call computes.
func Check(v Variant) error {
	if got, want := v.Loop(1000), loopDirect(1000); got != want {
		return fmt.Errorf("%s computes %d, want %d", v.Name, got, want)
	}
	return nil
}

// slotPatch writes the reference technique over victimSlot's prologue:
// movabs rdx, &funcval; jmp [rdx], 12 bytes, with a plain copy. It is the
// technique of gomonkey and bouk/monkey, kept here to measure its call cost
// only: it is not atomic, so nothing may call the victim while it is
// written.
func slotPatch() (func() error, error) {
	fv := funcVar
	fvp := *(*unsafe.Pointer)(unsafe.Pointer(&fv)) // the funcval of target
	code := []byte{0x48, 0xBA, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0x22}
	*(*uintptr)(unsafe.Pointer(&code[2])) = uintptr(fvp)
	v := victimSlot
	entry := *(*unsafe.Pointer)(*(*unsafe.Pointer)(unsafe.Pointer(&v)))
	orig := make([]byte, len(code))
	copy(orig, unsafe.Slice((*byte)(entry), len(code)))
	if err := writeText(entry, code); err != nil {
		return nil, err
	}
	return func() error { return writeText(entry, orig) }, nil
}

//go:noinline
func setVictim(x int) int { return helper(x) * 5 }

// SetResetCost alternates n first Sets and n Resets of a victim and returns
// the mean time of each.
func SetResetCost(n int) (first, reset time.Duration) {
	for range n {
		t0 := time.Now()
		err1 := registry.Set(setVictim, target)
		t1 := time.Now()
		err2 := registry.Reset(setVictim)
		t2 := time.Now()
		if err1 != nil || err2 != nil {
			panic(fmt.Sprint("bench: ", err1, err2))
		}
		first += t1.Sub(t0)
		reset += t2.Sub(t1)
	}
	return first / time.Duration(n), reset / time.Duration(n)
}

// RetargetCost times n Sets of a redirected victim, alternating two
// targets, and returns the mean.
func RetargetCost(n int) time.Duration {
	other := func(x int) int { return x }
	if err := registry.Set(setVictim, target); err != nil {
		panic(err)
	}
	defer registry.Reset(setVictim)
	t0 := time.Now()
	for i := range n {
		impl := target
		if i&1 == 0 {
			impl = other
		}
		if err := registry.Set(setVictim, impl); err != nil {
			panic(err)
		}
	}
	return time.Since(t0) / time.Duration(n)
}
