package registry

import (
	"errors"
	"fmt"

	"github.com/switchboard-go/switchboard/dispatch"
)

// Sentinel errors, for errors.Is. Every error from this package is an
// *Error wrapping one of them.
var (
	ErrNil          = errors.New("nil function")
	ErrNotFunc      = errors.New("not a function")
	ErrTypeMismatch = errors.New("fn and impl have different types")
	ErrNotEntry     = errors.New("not the entry of a function in this binary")
	ErrClosure      = errors.New("fn is a closure instance, which this operation cannot serve")
	ErrMethodValue  = errors.New("fn is a method value (x.M): use the method expression (*T).M or T.M")
	ErrGeneric      = errors.New("fn is generic code that cannot be patched per instantiation")
	ErrWrapper      = errors.New("fn is a compiler-generated wrapper that only some calls go through")
	ErrProtected    = errors.New("fn belongs to the Go runtime or to Switchboard's own patch path")
	ErrInlined      = errors.New("fn was inlined by the compiler, or the binary cannot prove it was not, so patching it could miss those calls")
	ErrCycle        = errors.New("calls would cycle forever")
	ErrModeConflict = errors.New("cannot switch modes while redirected")
	ErrUnsupported  = errors.New("unsupported on this platform or toolchain")
	// ErrUnfinished is the one error after which something did change: the
	// atomic code store took effect, then restoring the page's protection
	// or serializing the cores failed. The new state is in force and List
	// shows it.
	ErrUnfinished = errors.New("the code write took effect, but a step after it failed")

	// ErrUnpatchable: no tactic can patch the prologue safely.
	ErrUnpatchable = dispatch.ErrUnpatchable
	// ErrNoRelay: no relay page can be mapped within reach of the function.
	ErrNoRelay = dispatch.ErrNoRelay
	// ErrCodeWrite: code cannot be written in this process: a W^X policy
	// (systemd MemoryDenyWriteExecute, prctl PR_SET_MDWE, seccomp) refuses
	// to make it writable.
	ErrCodeWrite = dispatch.ErrCodeWrite
)

// Error is the error of a refused Set, Reset or Original. Nothing was
// changed, unless it wraps ErrUnfinished.
type Error struct {
	Op    string  // "Set", "Reset", "Original", ...; "Check" or "CheckC" for a verdict without a patch
	Func  string  // the function's name, or what was passed instead
	Entry uintptr // its entry, when known
	Err   error   // a sentinel, possibly wrapped with detail
}

func (e *Error) Error() string {
	if e.Entry != 0 {
		return fmt.Sprintf("switchboard: %s %s (%#x): %v", e.Op, e.Func, e.Entry, e.Err)
	}
	return fmt.Sprintf("switchboard: %s %s: %v", e.Op, e.Func, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// because wraps a sentinel with detail, keeping it visible to errors.Is.
// It formats nothing: refusals are built while the registry's lock is
// held, and formatting runs only when the caller asks for Error().
func because(sentinel error, format string, args ...any) error {
	return &detail{sentinel, format, args}
}

type detail struct {
	sentinel error
	format   string
	args     []any
}

func (d *detail) Error() string { return d.sentinel.Error() + ": " + fmt.Sprintf(d.format, d.args...) }

func (d *detail) Unwrap() error { return d.sentinel }
