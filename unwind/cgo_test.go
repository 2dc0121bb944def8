package unwind

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// buildFixture builds testdata/cgoprog with extra go build flags.
func buildFixture(t *testing.T, name string, flags ...string) string {
	t.Helper()
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("no C++ compiler for the cgo fixture:", err)
	}
	out := filepath.Join(t.TempDir(), name)
	args := append(append([]string{"build", "-o", out}, flags...), "./testdata/cgoprog")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// TestExternallyLinked: in a cgo binary the system linker puts C start-up
// code before runtime.text and C++ code after the Go text. With or without
// a symbol table, every Go function comes out at the same address and
// size, C++ functions keep their own extent, and names demangle.
func TestExternallyLinked(t *testing.T) {
	full := buildFixture(t, "full")
	stripped := buildFixture(t, "stripped", "-ldflags=-s -w")
	a, err := Open(full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(stripped)
	if err != nil {
		t.Fatal(err)
	}
	goFuncs := func(im *Image) map[string][2]uintptr {
		m := map[string][2]uintptr{}
		for _, f := range im.Funcs() {
			if f.Go {
				m[f.Name] = [2]uintptr{f.Entry, uintptr(f.Size)}
			}
		}
		return m
	}
	if diff := cmp.Diff(goFuncs(a), goFuncs(b)); diff != "" {
		t.Fatalf("Go functions differ between the full and the stripped binary (-full +stripped):\n%s", diff)
	}
	if a.pcln.textStart != b.pcln.textStart {
		t.Fatalf("runtime.text %#x in the full binary, %#x guessed in the stripped one", a.pcln.textStart, b.pcln.textStart)
	}
	var cxx *Func
	for _, f := range a.Funcs() {
		if f.Name == "_ZN2sb5twiceEi" {
			cxx = &f
		}
	}
	if cxx == nil || cxx.Go || cxx.Size == 0 {
		t.Fatalf("C++ function sb::twice: %+v", cxx)
	}
	if got := Demangle(cxx.Name); got != "sb::twice(int)" {
		t.Fatalf("Demangle = %q", got)
	}
	for _, bin := range []string{full, stripped} {
		out, err := exec.Command(bin).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, out)
		}
		want := "go: main.goFunc"
		if !strings.Contains(string(out), want) || (bin == full && !strings.Contains(string(out), "c++: sb::twice(int)")) {
			t.Fatalf("%s printed:\n%s", filepath.Base(bin), out)
		}
	}
}
