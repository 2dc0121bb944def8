package registry

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/switchboard-go/switchboard"
)

// Original returns a func value that runs fn's original body, whether fn
// is redirected or not: the way for a replacement to call through.
//
//	orig, err := registry.Original(pkg.Compute)
//	err = registry.Set(pkg.Compute, func(x int) int { return orig(x) * 2 })
//
// The func value enters a Go assembly stub that calls fn's trampoline in a
// relay page: a copy of the instructions a patch may overwrite, then a
// jump back into the function. Because the stub calls rather than jumps,
// a call that grows its stack and restarts at the patched entry is
// recognized by its return address and routed back to the original; no
// code of fn is rewritten. The stub moves stack-passed arguments and
// results one frame down. F must be a func type. Original refuses what Set
// refuses, and (ErrUnpatchable, with the reason) functions whose first
// instructions cannot run from a copy (a call, an indexed load through a
// pointer) and functions whose stack arguments, results and spill area
// exceed the stub's frame (switchboard.OriginalStackMax bytes).
func Original[F any](fn F) (F, error) {
	var zero F
	ft := reflect.TypeFor[F]()
	if ft.Kind() != reflect.Func {
		return zero, &Error{Op: "Original", Func: fmt.Sprintf("<%v>", ft), Err: because(ErrNotFunc, "Original needs a func type, not %v", ft)}
	}
	if err := refuseUnsupported("Original", fn); err != nil {
		return zero, err
	}
	fv, err := original(fn)
	if err != nil {
		return zero, err
	}
	var out F
	*(*unsafe.Pointer)(unsafe.Pointer(&out)) = fv
	return out, nil
}

// original returns the funcval of fn's original body; fn holds a func.
func original(fn any) (unsafe.Pointer, error) {
	ft := reflect.TypeOf(fn)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	rec, err := lookup("Original", fn)
	if err != nil {
		return nil, err
	}
	if rec.trampoline == nil {
		fail := func(err error) (unsafe.Pointer, error) {
			return nil, &Error{Op: "Original", Func: rec.name, Entry: uintptr(rec.entry), Err: err}
		}
		if rec.trampErr != nil {
			return fail(codeWriteCause(rec.trampErr))
		}
		stack, spill := abiFrame(ft)
		if stack+spill > switchboard.OriginalStackMax {
			rec.trampErr = because(ErrUnpatchable, "%d bytes of stack arguments and results and %d of register spill area: the Original stub's frame holds %d", stack, spill, switchboard.OriginalStackMax)
			return fail(rec.trampErr)
		}
		if err := rec.installTrampoline(); err != nil {
			return fail(codeWriteCause(err))
		}
		// The funcval's code is a Go assembly stub, never the trampoline
		// itself: `go orig()` starts a goroutine at the funcval's code,
		// and the garbage collector must be able to unwind it there.
		fv := &[3]uintptr{switchboard.OriginalEntryPC(), rec.tramp.Addr, stack}
		rec.trampoline = unsafe.Pointer(fv)
	}
	return rec.trampoline, nil
}

// installTrampoline plans and installs rec's trampoline on first use, and
// points the route's original at it: calls the route sends to the original
// (a guard that does not hold, a restart) then skip the patched entry.
// Original and scoped patches (whose unmatched calls run the original)
// both come this way.
func (rec *record) installTrampoline() error {
	if rec.tramp == nil {
		if rec.trampPlanErr != nil {
			return rec.trampPlanErr
		}
		t, err := planner().PlanTrampoline(rec.fn)
		if err != nil {
			rec.trampPlanErr = err
			return err
		}
		rec.tramp = t
	}
	// Install resumes where a failed attempt stopped.
	if err := rec.tramp.Install(rec.entry); err != nil {
		return err
	}
	rec.route.SetOriginal(rec.tramp.Addr)
	return nil
}
