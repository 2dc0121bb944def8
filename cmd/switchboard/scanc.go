package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/registry"
)

// The scan's refusals of C functions that registry.SetC refuses before
// planning: start-up code and the cgo glue (ErrProtected), and functions
// the compiler copied into callers (ErrInlined). They are older than the
// registry field, which now says the same with SetC's own words; they stay
// for the harnesses that read refused.
const (
	reasonCRuntime dispatch.Reason = "c-runtime"
	reasonCInlined dispatch.Reason = "c-inlined"
)

// scanCFunc plans one C function (a symbol outside the Go function table)
// with the rules registry.SetC applies: policy is SetC's verdict before
// planning (registry.CheckC), then only int3/nop padding counts as room,
// and the System V planner decides.
func scanCFunc(pl *dispatch.Planner, f dispatch.Func, policy error) (scanResult, error) {
	if policy != nil {
		r := reasonCInlined
		if errors.Is(policy, registry.ErrProtected) {
			r = reasonCRuntime
		}
		return scanResult{fn: f, refusal: &dispatch.RefusalError{Func: f.Name, Entry: f.Entry, Reason: r, Detail: registryReason(policy), Err: dispatch.ErrUnpatchable}}, nil
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
