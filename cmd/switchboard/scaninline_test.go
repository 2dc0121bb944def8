//go:build linux && amd64

package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestScanAcceptsNothingTheCompilerInlined builds testdata/inlineprog with
// the compiler reporting every call it inlines, in every package (-m),
// and checks that scan's registry field accepts none of the functions
// named there: the compiler's own account is the oracle, independent of
// DWARF and .gopclntab, and it sees the inlined copies that left no
// instruction (lib.AddTwo in main.callAddTwo, lib.Zero in main.shapes),
// which the binary records nowhere. The -m output names a function by
// its package's name, not its path, so two packages of one name share
// their verdicts (stricter, never laxer).
func TestScanAcceptsNothingTheCompilerInlined(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "inlineprog")
	build := exec.Command("go", "build", "-o", bin,
		"-gcflags=all=-m", "./testdata/inlineprog")
	build.Dir = "../.."
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	inlined := map[string]bool{}
	for _, m := range inliningCall.FindAllStringSubmatch(string(out), -1) {
		inlined[m[1]] = true
	}
	if !inlined["lib.AddTwo"] {
		t.Fatalf("the compiler's -m output names no inlined call to lib.AddTwo:\n%.2000s", out)
	}
	accepted, checked := 0, 0
	for _, row := range scanRows(t, bin) {
		name := row["name"].(string)
		if row["registry"].(string) != "" {
			continue
		}
		accepted++
		short := name[strings.LastIndexByte(skeletonName(name), '/')+1:]
		if inlined[short] {
			t.Errorf("scan says registry accepts %s, but the compiler inlined %s", name, short)
		}
		if strings.HasPrefix(name, "main.") || strings.HasPrefix(name, "github.com/switchboard-go/") {
			checked++
		}
	}
	t.Logf("%d accepted (%d of the program's own); the compiler inlined %d distinct functions", accepted, checked, len(inlined))
	if checked < 20 || accepted < 50 {
		t.Fatalf("too little to compare: %d accepted, %d of the program's own", accepted, checked)
	}
}

// inliningCall matches the compiler's -m line for one inlined call.
var inliningCall = regexp.MustCompile(`(?m): inlining call to (\S+)$`)

// skeletonName is name without what its outermost brackets hold, where an
// instantiation's type arguments may hold slashes.
func skeletonName(name string) string {
	var b strings.Builder
	depth := 0
	for _, c := range name {
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}
