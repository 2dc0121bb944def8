package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/unwind"
)

// reasonCRuntime is the scan's refusal of the C functions registry.SetC
// refuses by name (ErrProtected): start-up code and the cgo glue.
const reasonCRuntime dispatch.Reason = "c-runtime"

// scanCFunc plans one C function (a symbol outside the Go function table)
// with the rules registry.SetC applies: the runtime's C glue is refused,
// only int3/nop padding counts as room, and the System V planner decides.
func scanCFunc(pl *dispatch.Planner, f dispatch.Func) (scanResult, error) {
	if unwind.CRuntime(f.Name) {
		return scanResult{fn: f, refusal: &dispatch.RefusalError{
			Func: f.Name, Entry: f.Entry, Reason: reasonCRuntime,
			Detail: "C start-up code or the Go runtime's cgo glue", Err: dispatch.ErrUnpatchable,
		}}, nil
	}
	if f.Size < len(f.Bytes) {
		f.Bytes = f.Bytes[:f.Size+dispatch.CPadding(f.Bytes[f.Size:])]
	}
	cp, err := pl.PlanC(f)
	if err == nil {
		if verr := dispatch.Verify(f, cp.Patch()); verr != nil {
			return scanResult{}, fmt.Errorf("planning %s: the patch failed verification: %w", f.Name, verr)
		}
		return scanResult{fn: f, patch: cp.Patch()}, nil
	}
	var ref *dispatch.RefusalError
	if errors.As(err, &ref) {
		return scanResult{fn: f, refusal: ref}, nil
	}
	return scanResult{}, fmt.Errorf("planning %s: %w", f.Name, err)
}

// allTactics are the Go tactics, then those only C functions use.
func allTactics() []dispatch.Tactic {
	out := slices.Clone(dispatch.Tactics)
	for _, t := range dispatch.CTactics {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
