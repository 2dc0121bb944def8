package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/unwind"
)

// The scan's refusals of C functions that registry.SetC refuses before
// planning: start-up code and the cgo glue (ErrProtected), and functions
// the compiler copied into callers (ErrInlined).
const (
	reasonCRuntime dispatch.Reason = "c-runtime"
	reasonCInlined dispatch.Reason = "c-inlined"
)

// scanCFunc plans one C function (a symbol outside the Go function table)
// with the rules registry.SetC applies: the runtime's C glue and functions
// with inlined or cloned copies are refused, only int3/nop padding counts
// as room, and the System V planner decides.
func scanCFunc(pl *dispatch.Planner, f dispatch.Func, path string) (scanResult, error) {
	refuse := func(r dispatch.Reason, detail string) (scanResult, error) {
		return scanResult{fn: f, refusal: &dispatch.RefusalError{Func: f.Name, Entry: f.Entry, Reason: r, Detail: detail, Err: dispatch.ErrUnpatchable}}, nil
	}
	if unwind.CRuntime(f.Name) {
		return refuse(reasonCRuntime, "C start-up code or the Go runtime's cgo glue")
	}
	copies, _, err := unwind.CInlined(path, f.Name)
	if err != nil {
		return refuse(reasonCInlined, fmt.Sprintf("cannot tell whether it was inlined: %v", err))
	}
	if len(copies) > 0 {
		return refuse(reasonCInlined, "copied into "+strings.Join(copies, ", "))
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
	out := dispatch.Tactics()
	for _, t := range dispatch.CTactics() {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
