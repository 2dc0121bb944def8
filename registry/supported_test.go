package registry_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/unwind"
)

//go:noinline
func unsupportedVictim(x int) int { return x + 100 }

//go:noinline
func unsupportedPatched(x int) int { return x + 200 }

func entryBytes(fn func(int) int) [16]byte {
	return *(*[16]byte)(**(**unsafe.Pointer)(unsafe.Pointer(&fn)))
}

// TestUnsupportedRefusesEverything: when the start-up self-check fails (a
// toolchain whose function table this code misreads) or no membarrier
// SYNC_CORE proves a write reaches every core, Set, Reset and Original are
// refused with ErrUnsupported, and neither the code, List nor behaviour
// changes: a fresh function stays unpatched, a patched one stays patched.
func TestUnsupportedRefusesEverything(t *testing.T) {
	repl := func(x int) int { return x + 300 }
	if err := registry.Set(unsupportedPatched, repl); err != nil {
		t.Fatal(err)
	}
	defer registry.Reset(unsupportedPatched)

	for _, c := range []struct {
		name                   string
		selfCheckErr, writeErr error
	}{
		{"self-check fails", fmt.Errorf("%w: _func layout differs", unwind.ErrSelfCheck), nil},
		{"no membarrier SYNC_CORE", nil, fmt.Errorf("%w: membarrier offers no PRIVATE_EXPEDITED_SYNC_CORE", dispatch.ErrUnsupported)},
	} {
		t.Run(c.name, func(t *testing.T) {
			staged := registry.NewBatch()
			if err := registry.Stage(staged, unsupportedVictim, repl); err != nil {
				t.Fatal(err)
			}
			defer registry.InjectUnsupported(c.selfCheckErr, c.writeErr)()

			codeV, codeP, list := entryBytes(unsupportedVictim), entryBytes(unsupportedPatched), registry.List()
			calls := []func() error{
				func() error { return registry.Set(unsupportedVictim, repl) },
				func() error { return registry.SetWith(unsupportedVictim, repl, registry.WithMode(registry.CallMode)) },
				func() error { return registry.Reset(unsupportedVictim) },
				func() error { _, err := registry.Original(unsupportedVictim); return err },
				func() error { return registry.Set(unsupportedPatched, unsupportedVictim) },
				func() error { return registry.Reset(unsupportedPatched) },
				func() error { _, err := registry.Original(unsupportedPatched); return err },
				func() error { return registry.Stage(registry.NewBatch(), unsupportedVictim, repl) },
				func() error { return registry.ResetWith(unsupportedPatched) },
			}
			for i, call := range calls {
				err := call()
				var e *registry.Error
				if !errors.As(err, &e) || !errors.Is(err, registry.ErrUnsupported) || !strings.Contains(e.Func, "unsupported") {
					t.Errorf("call %d: %v, want an *Error naming the function, wrapping ErrUnsupported", i, err)
				}
			}
			if err := staged.Commit(); !errors.Is(err, registry.ErrUnsupported) {
				t.Errorf("Commit of a batch staged before: %v, want ErrUnsupported", err)
			}
			if entryBytes(unsupportedVictim) != codeV || entryBytes(unsupportedPatched) != codeP {
				t.Error("a refused call changed code")
			}
			if !slices.Equal(registry.List(), list) {
				t.Errorf("List changed: %v, was %v", registry.List(), list)
			}
			if unsupportedVictim(1) != 101 || unsupportedPatched(1) != 301 {
				t.Errorf("behaviour changed: victim(1) = %d, patched(1) = %d", unsupportedVictim(1), unsupportedPatched(1))
			}
		})
	}
}
