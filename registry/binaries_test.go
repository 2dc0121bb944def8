package registry_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBinaryKinds builds testdata/selfprog as a plain and as a PIE binary
// (and an externally linked PIE when gcc is there), runs each from a path with a space, and once more after it deleted its
// own file: Set and Original must work in all of them (finding a PIE's load
// address must not depend on its path).
func TestBinaryKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	dir := filepath.Join(t.TempDir(), "with space")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	modes := [][]string{{"exe"}, {"pie"}}
	if _, err := exec.LookPath("gcc"); err == nil {
		// The system linker lays the binary out; the self-check must pass.
		modes = append(modes, []string{"pie", "-ldflags=-linkmode=external"})
	}
	for _, m := range modes {
		mode := strings.Join(m, " ")
		bin := filepath.Join(dir, "selfprog-"+strings.ReplaceAll(mode, " ", "_"))
		build := exec.Command("go", append([]string{"build", "-buildmode=" + m[0], "-o", bin}, append(m[1:], "./testdata/selfprog")...)...)
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", mode, err, out)
		}
		for _, del := range []string{"0", "1"} {
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "SELFPROG_DELETE="+del)
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok compute(3)=-7 original(3)=7" {
				t.Fatalf("%s, delete=%s: %v\n%s", mode, del, err, out)
			}
		}
	}
}

// TestInliningByBuildKind builds testdata/inlineprog four ways and checks
// which of its victims Set refuses as inlined (ErrInlined) and which it
// patches so that the callers see the replacement. A victim Set accepts
// whose caller still runs the old body ("MISSED") is the silent miss this
// guards against.
func TestInliningByBuildKind(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	small := []string{"triple", "addOne", "sum", "get", "set"}
	holes := []string{"lib.genHelper", "lib.(*Counter).kind", "lib.Tabbed", "lib.Blocked"}
	for _, kind := range []struct {
		name  string
		flags []string
		// want is each victim's outcome; "patched" for the rest.
		want map[string]string
	}{
		// lib.AddTwo is exported and folds into its caller in another
		// package, leaving no trace: with DWARF, Set cannot prove it was
		// not inlined. The //go:noinline twins are read from the source
		// even without DWARF; lib.Forward calls out on every path.
		// The holes a review found: lib.genHelper (inlined through
		// generic code whose instantiations the linker dropped),
		// lib.(*Counter).kind (inlined into main's promoted-method
		// wrapper), a directive with a tab after it, one in a block
		// comment.
		// lib.Forward, lib.Upper and time.Now call out on every path: the inline
		// trees of .gopclntab settle them without DWARF (Upper is inlined
		// into main.callUpper, Forward and time.Now nowhere).
		{"go build (DWARF)", nil, merge(outcomes("inlined", append(small, append(holes, "lib.Upper", "flat.AddOne")...)...), outcomes("cannot prove", "lib.AddTwo"))},
		{"-ldflags=-s -w (no DWARF)", []string{"-ldflags=-s -w"}, merge(outcomes("cannot prove", append(small, "lib.AddTwo", "flat.AddOne")...), outcomes("inlined", append(holes, "lib.Upper")...))},
		// Every package but flat built with -l: no inline tree anywhere,
		// yet flat inlined AddOne (a review's finding). The recorded
		// -gcflags is the last one, flat's, so -l is not proven for all;
		// DWARF shows flat's copy.
		// The binary does not record an overlay: main.go's sumNI loses its
		// directive in the file the compiler reads, not on disk. Its copy
		// in callSumNI left code, which the inline trees record, and that
		// refutes the directive read from disk (an adversarial test's
		// finding; a copy that left no code would go unseen).
		{"-overlay, -ldflags=-s -w (sumNI's directive dropped)", []string{"-overlay", "OVERLAY", "-ldflags=-s -w"}, merge(outcomes("cannot prove", append(small, "lib.AddTwo", "flat.AddOne")...), outcomes("inlined", append(holes, "lib.Upper", "sumNI")...))},
		// No DWARF for package main while the rest keeps it.
		{"-gcflags=-dwarf=false (main only)", []string{"-gcflags=-dwarf=false"}, outcomes("any", append(append(small, holes...), "lib.AddTwo", "lib.Forward", "lib.Upper", "flat.AddOne")...)},
		{"-gcflags=all=-l, flat with inlining", []string{"-gcflags=all=-l", "-gcflags=github.com/switchboard-go/switchboard/testdata/inlineprog/flat="}, merge(outcomes("any", append(append(small, holes...), "lib.AddTwo", "lib.Forward", "lib.Upper", "time.Now")...), outcomes("inlined", "flat.AddOne"))},
		{"-gcflags=all=-l", []string{"-gcflags=all=-l"}, nil},
		{"-gcflags=all=-l -ldflags=-s -w", []string{"-gcflags=all=-l", "-ldflags=-s -w"}, nil},
	} {
		t.Run(kind.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "inlineprog")
			flags := slices.Clone(kind.flags)
			if i := slices.Index(flags, "OVERLAY"); i >= 0 {
				flags[i] = overlayWithout(t, "//go:noinline\nfunc sumNI")
			}
			build := exec.Command("go", append(append([]string{"build", "-o", bin}, flags...), "./testdata/inlineprog")...)
			build.Dir = ".."
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			out, err := exec.Command(bin).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for line := range strings.Lines(string(out)) {
				name, got, _ := strings.Cut(strings.TrimSpace(line), " ")
				want := kind.want[name]
				switch {
				case want == "any" && got == "MISSED":
					t.Errorf("%s: %s", name, got)
				case want == "any":
				case want == "" && got != "patched":
					t.Errorf("%s: %s, want patched", name, got)
				case want == "inlined" && !strings.HasPrefix(got, "inlined: "):
					t.Errorf("%s: %s, want ErrInlined", name, got)
				case want == "cannot prove" && !(strings.HasPrefix(got, "inlined: ") && strings.Contains(got, "cannot prove") && strings.Contains(got, "-gcflags=all=-l")):
					t.Errorf("%s: %s, want ErrInlined saying it cannot prove and how to fix it", name, got)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// overlayWithout writes an -overlay file replacing testdata/inlineprog's
// main.go by a copy with cut's first line (the directive) taken out.
func overlayWithout(t *testing.T, cut string) string {
	t.Helper()
	orig, err := filepath.Abs("../testdata/inlineprog/main.go")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, rest, _ := strings.Cut(cut, "\n")
	edited := strings.Replace(string(src), cut, "// directive dropped\n"+rest, 1)
	if edited == string(src) {
		t.Fatalf("%q is not in %s", cut, orig)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay.json")
	js := fmt.Sprintf(`{"Replace":{%q:%q}}`, orig, filepath.Join(dir, "main.go"))
	if err := os.WriteFile(overlay, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	return overlay
}

func merge(a, b map[string]string) map[string]string {
	maps.Copy(a, b)
	return a
}

func outcomes(want string, names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = want
	}
	return m
}
