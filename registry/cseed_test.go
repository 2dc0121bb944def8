package registry_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	"github.com/switchboard-go/switchboard/registry"
)

// TestSeed builds testdata/seed (C and C++ through cgo, and at run time a
// shared object with the replacements) as a plain and as a PIE binary and
// runs it as a child process: four pthreads and a goroutine call the
// seed's `one` while SetC and ResetC flip it to replacements more than
// 2 GiB away; the child checks every result, patches a C++ method by its
// demangled name and checks every refusal. It exits 1 on any wrong result.
func TestSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	for _, tool := range []string{"gcc", "g++"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the seed needs %s (cgo's compiler and the replacement library): %v", tool, err)
		}
	}
	dir := t.TempDir()
	for _, mode := range []string{"exe", "pie"} {
		t.Run(mode, func(t *testing.T) {
			bin := filepath.Join(dir, "seed-"+mode)
			build := exec.Command("go", "build", "-buildmode="+mode, "-o", bin, "./testdata/seed")
			build.Dir = ".."
			build.Env = append(os.Environ(), "CGO_ENABLED=1")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			out, err := exec.Command(bin, "-duration", "2s").CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("seed: %v", err)
			}
			s := string(out)
			storm := regexp.MustCompile(`(?m)^storm: .* (\d+) flips, .* wrong 0$`).FindStringSubmatch(s)
			if storm == nil || storm[1] == "0" || !strings.HasSuffix(strings.TrimSpace(s), "OK") {
				t.Fatalf("no storm line with flips and 0 wrong, or no OK")
			}
			if !strings.Contains(s, "16k+6), bytes 55 48 89 e5 b8 2a 00 00 00 5d c3") || !strings.Contains(s, "past-frame") {
				t.Fatalf("one is not at the seed's alignment with the seed's bytes, or was not patched past its frame setup")
			}
		})
	}
}

// TestCRefusals: what the C entry points refuse in a pure Go process,
// each with its sentinel, and List unchanged.
func TestCRefusals(t *testing.T) {
	before := registry.List()
	goCode := reflect.ValueOf(TestCRefusals).UnsafePointer()
	heap := unsafe.Pointer(new([64]byte))
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"SetC nil", registry.SetC(nil, goCode), registry.ErrNil},
		{"ResetC nil", registry.ResetC(nil), registry.ErrNil},
		{"SetC of Go code", registry.SetC(goCode, goCode), registry.ErrNotEntry},
		{"ResetC of heap memory", registry.ResetC(heap), registry.ErrNotEntry},
		{"OriginalC of Go code", func() error { _, err := registry.OriginalC(goCode); return err }(), registry.ErrNotEntry},
		{"LookupSymbol of nothing", func() error { _, err := registry.LookupSymbol("no::such(int) const"); return err }(), registry.ErrSymbolNotFound},
	} {
		var re *registry.Error
		if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &re) {
			t.Errorf("%s: %v, want a *registry.Error wrapping %v", tc.name, tc.err, tc.want)
		}
	}
	if got := registry.List(); !reflect.DeepEqual(got, before) {
		t.Fatalf("List changed: %v, was %v", got, before)
	}
}
