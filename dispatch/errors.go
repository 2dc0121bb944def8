package dispatch

import (
	"errors"
	"fmt"
)

var (
	// ErrUnpatchable: no tactic can patch the prologue without breaking an
	// instruction that a thread may be stopped at.
	ErrUnpatchable = errors.New("prologue cannot be patched safely")
	// ErrNoRelay: every relay address the pinned rel32 allows is taken or
	// out of reach.
	ErrNoRelay = errors.New("no relay page can be mapped within reach")
	// ErrUnsupported: live code cannot be written safely on this platform
	// or kernel (see Writable).
	ErrUnsupported = errors.New("code writes unsupported here")
)

// Reason classifies a refusal, for reports such as the scan's.
type Reason string

const (
	ReasonEmpty      Reason = "empty"            // no code
	ReasonDecode     Reason = "undecodable"      // x86asm cannot decode an instruction
	ReasonBackEdge   Reason = "back-edge"        // a branch in the function lands on the patch point
	ReasonRoom       Reason = "too-short"        // the patch would run into the next symbol
	ReasonQuadword   Reason = "quadword"         // the patch does not fit one aligned quadword
	ReasonPins       Reason = "pinned-opcode"    // an interior instruction pins a prefix or opcode byte
	ReasonCallReturn Reason = "call-return"      // call mode: return address outside the code, or SP moved
	ReasonNoWindow   Reason = "no-relay-window"  // every allowed relay address is taken
	ReasonTrampoline Reason = "no-trampoline"    // the original's first instructions cannot be copied
	ReasonMap        Reason = "relay-map-failed" // mapping or writing a relay page failed
)

// RefusalError says why a function cannot be patched. It wraps
// ErrUnpatchable or ErrNoRelay.
type RefusalError struct {
	Func   string
	Entry  uintptr
	Reason Reason
	Detail string
	Err    error
}

// Error gives the reason only: whoever reports it names the function.
func (e *RefusalError) Error() string {
	return fmt.Sprintf("%v (%s): %s", e.Err, e.Reason, e.Detail)
}

func (e *RefusalError) Unwrap() error { return e.Err }

func refuse(f Func, r Reason, detail string) error {
	err := ErrUnpatchable
	if r == ReasonNoWindow || r == ReasonMap {
		err = ErrNoRelay
	}
	return &RefusalError{Func: f.Name, Entry: f.Entry, Reason: r, Detail: detail, Err: err}
}
