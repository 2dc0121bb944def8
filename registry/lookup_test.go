package registry_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-go/switchboard/registry"
)

// Victims reached by name only: unexported, never referenced as values.

//go:noinline
func byNameTriple(x int) int { return 3 * x }

type byNameT struct{ n int }

//go:noinline
func (b *byNameT) get(x int) int { return b.n + x + byNameTriple(0) }

//go:noinline
func (b byNameT) val(s string) string { return s + "!" }

var byNameClosure = func() int { return len(testPkg()) }

// testPkg is this test package's import path, as symbol names spell it.
func testPkg() string {
	n := runtime.FuncForPC(reflect.ValueOf(testPkg).Pointer()).Name()
	return n[:strings.LastIndexByte(n, '.')]
}

func TestLookupCallsSetsAndOriginals(t *testing.T) {
	if byNameTriple(2) != 6 || (&byNameT{1}).get(1) != 2 || (byNameT{}).val("a") != "a!" {
		t.Fatal("victims")
	}
	pkg := testPkg()
	triple, err := registry.Lookup[func(int) int](pkg + ".byNameTriple")
	must(t, err)
	if got := triple(5); got != 15 {
		t.Fatalf("looked-up byNameTriple(5) = %d", got)
	}
	must(t, registry.Set(triple, func(x int) int { return -x }))
	if got := byNameTriple(5); got != -5 {
		t.Fatalf("after Set by name: byNameTriple(5) = %d, want -5", got)
	}
	orig, err := registry.Original(triple)
	must(t, err)
	if got := orig(5); got != 15 {
		t.Fatalf("Original of the looked-up value: %d, want 15", got)
	}
	must(t, registry.Reset(triple))
	if got := byNameTriple(5); got != 15 {
		t.Fatalf("after Reset: %d", got)
	}

	get, err := registry.Lookup[func(*byNameT, int) int](pkg + ".(*byNameT).get")
	must(t, err)
	if got := get(&byNameT{n: 10}, 1); got != 11 {
		t.Fatalf("(*byNameT).get by name = %d", got)
	}
	must(t, registry.Set(get, func(b *byNameT, x int) int { return b.n * x }))
	got := (&byNameT{n: 10}).get(3)
	must(t, registry.Reset(get))
	if got != 30 {
		t.Fatalf("patched (*byNameT).get = %d, want 30", got)
	}

	val, err := registry.LookupValue(pkg+".byNameT.val", reflect.TypeFor[func(byNameT, string) string]())
	must(t, err)
	out := val.Call([]reflect.Value{reflect.ValueOf(byNameT{}), reflect.ValueOf("x")})
	if s := out[0].String(); s != "x!" {
		t.Fatalf("byNameT.val by LookupValue = %q", s)
	}

	again, err := registry.Lookup[func(int) int](pkg + ".byNameTriple")
	must(t, err)
	if reflect.ValueOf(again).UnsafePointer() != reflect.ValueOf(triple).UnsafePointer() {
		t.Errorf("two Lookups of one name gave different code")
	}
}

// TestLookupRefusals: each refusal is typed and names the function. The
// type cases are the ones the argument-frame check sees without DWARF (go
// test strips it); TestLookupDWARF covers the rest in a child binary.
func TestLookupRefusals(t *testing.T) {
	pkg := testPkg()
	closure := runtime.FuncForPC(reflect.ValueOf(byNameClosure).Pointer()).Name()
	for _, c := range []struct {
		name string
		t    reflect.Type
		want error
	}{
		{pkg + ".noSuchFunction", reflect.TypeFor[func()](), registry.ErrNotEntry},
		{"byNameTriple", reflect.TypeFor[func(int) int](), registry.ErrNotEntry}, // no import path
		{pkg + ".byNameTriple", reflect.TypeFor[func(int, int) int](), registry.ErrTypeMismatch},
		{pkg + ".byNameTriple", reflect.TypeFor[func(string) int](), registry.ErrTypeMismatch},
		{pkg + ".byNameTriple", reflect.TypeFor[func()](), registry.ErrTypeMismatch},
		{pkg + ".byNameTriple", reflect.TypeFor[func(int) [4]int](), registry.ErrTypeMismatch}, // a stack-assigned result
		{pkg + ".(*byNameT).get", reflect.TypeFor[func(int) int](), registry.ErrTypeMismatch},  // receiver missing
		{pkg + ".byNameTriple", reflect.TypeFor[int](), registry.ErrNotFunc},
		{pkg + ".byNameTriple", nil, registry.ErrNotFunc},
		{closure, reflect.TypeFor[func() int](), registry.ErrClosure},
		{"runtime.rt0_go", reflect.TypeFor[func()](), registry.ErrWrapper}, // assembly (ABI0)
	} {
		_, err := registry.LookupValue(c.name, c.t)
		var e *registry.Error
		if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Func != c.name || e.Op != "Lookup" {
			t.Errorf("LookupValue(%q, %v) = %v; want an *Error for it wrapping %v", c.name, c.t, err, c.want)
		}
	}
	if _, err := registry.Lookup[int](pkg + ".byNameTriple"); !errors.Is(err, registry.ErrNotFunc) {
		t.Errorf("Lookup[int]: %v", err)
	}
}

// TestLookupDWARF builds testdata/lookupprog with DWARF and without
// (-ldflags=-w): with it, Lookup checks every argument's and result's size
// and kind; without it, only the argument frame, so types of the same
// size and results in registers pass (the documented limit). The build
// without DWARF also disables inlining, as a Set there needs.
func TestLookupDWARF(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	common := []string{
		"main.square func(int) int: ok",
		"main.square func(int, int) int: mismatch",
		"main.(*box).get func(*main.box) int: ok",
		"main.(*box).get func(main.box) int: mismatch",
		"square(4) after Set by name: -4 <nil>",
		"box 3",
	}
	want := map[string][]string{
		"": append([]string{
			"main.square func(int) string: mismatch",
			"main.square func(*int) int: mismatch",
			"main.square func(int) (int, int): mismatch",
			"main.(*box).get func(uintptr) int: mismatch",
		}, common...),
		"-w": append([]string{
			"main.square func(int) string: ok",
			"main.square func(*int) int: ok",
			"main.square func(int) (int, int): ok",
			"main.(*box).get func(uintptr) int: ok",
		}, common...),
	}
	for _, ld := range []string{"", "-w"} {
		bin := filepath.Join(t.TempDir(), "lookupprog")
		args := []string{"build", "-ldflags=" + ld, "-o", bin}
		if ld == "-w" {
			args = append(args, "-gcflags=all=-l")
		}
		build := exec.Command("go", append(args, "./testdata/lookupprog")...)
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build -ldflags=%s: %v\n%s", ld, err, out)
		}
		out, err := exec.Command(bin).CombinedOutput()
		if err != nil {
			t.Fatalf("-ldflags=%s: %v\n%s", ld, err, out)
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(got)
		w := slices.Clone(want[ld])
		slices.Sort(w)
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("-ldflags=%q (-want +got):\n%s", ld, diff)
		}
	}
}
