package registry

import (
	"errors"
	"testing"
)

func TestKindAndPolicy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kind      error
		protected bool
	}{
		{"main.compute", nil, false},
		{"example.com/a/b.(*T).M", nil, false},
		{"example.com/a/b.T.M", nil, false},
		{"example.com/a/b.F.func1", ErrClosure, false},
		{"example.com/a/b.F.func1.2", ErrClosure, false},
		{"example.com/a/b.F.func12.3.4", ErrClosure, false},
		{"example.com/a/b.glob..func3", ErrClosure, false},
		{"example.com/a/b.F.gowrap1", ErrClosure, false},
		{"example.com/a/b.F.deferwrap2", ErrClosure, false},
		{"example.com/a/b.F-range1", ErrClosure, false},
		{"example.com/a/b.F-range1.1", ErrClosure, false},
		{"example.com/a/b.function1", nil, false},
		{"example.com/a/b.func1", nil, false},
		{"main.func2", nil, false},
		{"example.com/a/b.(*T).M-fm", ErrMethodValue, false},
		{"example.com/a/b.G[...]", ErrGeneric, false},
		{"runtime.GC", nil, true},
		{"runtime/debug.FreeOSMemory", nil, true},
		{"internal/abi.NoEscape", nil, true},
		{"vendor/golang.org/x/net/idna.ToASCII", nil, true},
		{"sync.(*Mutex).Lock", nil, true},
		{"sync/atomic.AddInt64", nil, true},
		{"golang.org/x/sys/unix.Mprotect", nil, true},
		{"github.com/switchboard-go/switchboard/dispatch.SyncCores", nil, true},
		{"github.com/switchboard-go/switchboard/cmd/switchboard.runDemo", nil, false},
		{"example.com/my/internal/pkg.F", nil, false},
		{"x_cgo_init", nil, true},
	} {
		if got := kind(tc.name); !errors.Is(got, tc.kind) || (got == nil) != (tc.kind == nil) {
			t.Errorf("kind(%q) = %v, want %v", tc.name, got, tc.kind)
		}
		if got := protected(tc.name) != ""; got != tc.protected {
			t.Errorf("protected(%q) = %q, want protected %v", tc.name, protected(tc.name), tc.protected)
		}
	}
}
