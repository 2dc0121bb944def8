package registry_test

import (
	"os"
	"os/exec"
	"path/filepath"
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
