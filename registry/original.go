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
// It runs a trampoline in a relay page: a copy of the instructions a patch
// may overwrite, then a jump back into the function. The first call of
// Original on a function also points its stack-growth restart at the
// trampoline, for good, so that a call through it that grows the stack
// does not restart at the patched entry. F must be a func type. Original
// refuses what Set refuses, and functions whose first instructions cannot
// run from a copy (ErrUnpatchable): a call, or a load through a pointer
// register, which could fault outside Go code.
func Original[F any](fn F) (F, error) {
	var zero F
	if t := reflect.TypeFor[F](); t.Kind() != reflect.Func {
		return zero, &Error{Op: "Original", Func: fmt.Sprintf("<%v>", t), Err: because(ErrNotFunc, "Original needs a func type, not %v", t)}
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
			return fail(rec.trampErr)
		}
		if rec.tramp == nil {
			t, err := planner().PlanTrampoline(rec.fn)
			if err != nil {
				rec.trampErr = err
				return fail(err)
			}
			rec.tramp = t
		}
		// Install resumes where a failed attempt stopped.
		if err := rec.tramp.Install(rec.entry); err != nil {
			return fail(err)
		}
		// The funcval's code is a Go assembly stub, never the trampoline
		// itself: `go orig()` starts a goroutine at the funcval's code,
		// and the garbage collector must be able to unwind it there.
		fv := &[2]uintptr{switchboard.OriginalEntryPC(), rec.tramp.Addr}
		rec.trampoline = unsafe.Pointer(fv)
	}
	return rec.trampoline, nil
}
