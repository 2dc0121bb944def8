package registry

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/unwind"
)

// selfImage is the test binary's image, whose tables protected reads.
func selfImage(t *testing.T) *unwind.Image {
	t.Helper()
	im, err := unwind.Self()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestKindAndPolicy(t *testing.T) {
	self := selfImage(t)
	for _, tc := range []struct {
		name      string
		kind      error
		protected bool
	}{
		{"main.compute", nil, false},
		{"example.com/a/b.(*T).M", nil, false},
		{"example.com/a/b.T.M", nil, false},
		{"example.com/a/b.F.func1", ErrClosure, false},
		{"example.com/a/b.(*T).func1", nil, false},
		{"example.com/a/b.(*T[...]).func1", ErrGeneric, false},
		{"example.com/a/b.(*T).M.func1", ErrClosure, false},
		{"example.com/a/b.T.M.func1", ErrClosure, false},
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
		{"fmt.Errorf", nil, true},
		{"strconv.Itoa", nil, true},
		{"compress/flate.NewReader", nil, true},
		{"debug/dwarf.New", nil, true},
		{"os.Open", nil, true},
		{"text/template.New", nil, false},
	} {
		if got := kind(tc.name, nil); !errors.Is(got, tc.kind) || (got == nil) != (tc.kind == nil) {
			t.Errorf("kind(%q) = %v, want %v", tc.name, got, tc.kind)
		}
		if got := protected(self, tc.name, 0) != ""; got != tc.protected {
			t.Errorf("protected(%q) = %q, want protected %v", tc.name, protected(self, tc.name, 0), tc.protected)
		}
	}
}

// TestProtectedByWhereCodeLives: std functions whose bodies are the
// runtime's (//go:linkname pushes) are protected for where their code
// comes from, whatever they are called.
func TestProtectedByWhereCodeLives(t *testing.T) {
	self := selfImage(t)
	for name, fn := range map[string]any{"time.Sleep": time.Sleep, "syscall.Exit": syscall.Exit, "syscall.Getpagesize": syscall.Getpagesize} {
		entry := reflect.ValueOf(fn).Pointer()
		for _, as := range []string{name, "example.com/innocent.F"} {
			if why := protected(self, as, entry); !strings.Contains(why, "code is in runtime") {
				t.Errorf("%s named %s: protected = %q, want its code in runtime", name, as, why)
			}
		}
	}
	if why := protected(self, "example.com/innocent.F", reflect.ValueOf(TestProtectedByWhereCodeLives).Pointer()); why != "" {
		t.Errorf("a test function is protected: %s", why)
	}
}

type nameList []string

func (l nameList) FuncNames(prefix string) []string {
	var out []string
	for _, n := range l {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// TestClosureOrMethod: pkg.X.func1 is a closure of function X or a value
// method of type X; the other functions of the binary tell which.
func TestClosureOrMethod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bin     nameList
		closure bool
	}{
		{"p.F.func1", nameList{"p.F", "p.F.func1"}, true},
		{"p.F.func2", nameList{"p.F.func1", "p.F.func2"}, true}, // F inlined everywhere: cannot tell, refuse
		{"p.T.func1", nameList{"p.T.func1", "p.T.String"}, false},
		{"p.T.func1", nameList{"p.T.func1", "p.(*T).func1"}, false},
		{"p.T.func1", nameList{"p.T.func1", "p.TT", "p.TT.func1"}, true},
		{"p.(*T).func1", nil, false},
		{"p.F-range1", nameList{"p.F-range1"}, true},
	} {
		if got := isClosure(tc.name, tc.bin); got != tc.closure {
			t.Errorf("isClosure(%q, %q) = %v, want %v", tc.name, tc.bin, got, tc.closure)
		}
	}
}

func TestCallableElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // a word of the reason, or "" for none
	}{
		{"main.helper", ""},
		{"main.Exported", ""},
		{"main.(*T).M", ""},
		{"example.com/plain_test.Exported", ""},
		{"example.com/plain.helper", "not main"},
		{"example.com/plain.Helper", "exported"},
		{"example.com/plain.(*T).m", "not main"},
		{"example.com/plain.(*t).M", "exported"},
		{"example.com/plain.T.M", "exported"},
		{"example.com/plain.T.m", "not main"},
		{"example.com/plain.Helper.func1", "exported"},
		{"example.com/plain.helper.func1", "not main"},
		{"example.com/plain.glob..func1", "not main"},
		{"example.com/plain.F[go.shape.int]", "exported"},
	} {
		got := callableElsewhere(tc.name)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("callableElsewhere(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
