package dispatch

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrPartial: a batch of code writes failed half-way and could not be
// rolled back. Only a writer outside this package can cause it.
var ErrPartial = errors.New("batch of code writes left half-applied")

// A QuadSwap is one aligned quadword store of a batch: At must hold Old,
// and gets New. A Wide swap is one aligned octoword store: OldHi and
// NewHi are its second quadword (see Patch.Wide).
type QuadSwap struct {
	At           unsafe.Pointer
	Old, New     [8]byte
	Wide         bool
	OldHi, NewHi [8]byte
}

// size is how many bytes the swap stores.
func (w QuadSwap) size() uintptr {
	if w.Wide {
		return 16
	}
	return 8
}

// Swap returns the store that writes the patch over the original quadword
// (or, with restore, the original back over the patch), for SwapQuads.
// entry must be the live function entry; applying needs the site
// installed.
func (p *Patch) Swap(entry unsafe.Pointer, restore bool) (QuadSwap, error) {
	if uintptr(entry) != p.Entry {
		return QuadSwap{}, fmt.Errorf("%s: patch planned for %#x, applied at %p", p.Name, p.Entry, entry)
	}
	at := unsafe.Add(entry, int(p.quad-p.Entry))
	if restore {
		return QuadSwap{At: at, Old: p.patched, New: p.orig, Wide: p.wide, OldHi: p.patchedHi, NewHi: p.origHi}, nil
	}
	if !p.installed {
		return QuadSwap{}, fmt.Errorf("%s: site not installed", p.Name)
	}
	return QuadSwap{At: at, Old: p.orig, New: p.patched, Wide: p.wide, OldHi: p.origHi, NewHi: p.patchedHi}, nil
}

// PlanAll is Plan for many functions: the address space is read once for
// all of them, not once per new relay page. errs[i] is nil when ps[i] was
// planned.
func (pl *Planner) PlanAll(fs []Func, mode Mode) (ps []*Patch, errs []error) {
	pl.mu.Lock()
	busy, err := pl.relay.space.Busy()
	if err == nil {
		pl.relay.cached = busy
	}
	pl.mu.Unlock()
	defer func() {
		pl.mu.Lock()
		pl.relay.cached = nil
		pl.mu.Unlock()
	}()
	ps, errs = make([]*Patch, len(fs)), make([]error, len(fs))
	for i, f := range fs {
		ps[i], errs[i] = pl.Plan(f, mode)
	}
	return ps, errs
}
