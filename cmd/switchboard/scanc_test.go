//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/switchboard-go/switchboard/dispatch"
)

// TestScanCFunctions scans the seed program (testdata/seed) and checks
// its C functions get the verdicts registry.SetC gives them in the live
// process (TestSeed in package registry): `one` at 16k+6 patchable past
// its frame setup, the same bytes at 16k+2 refused for want of an aligned
// quadword, the cgo glue and a function inlined into a caller refused, the
// C++ method patchable at its entry.
// Before the scan used the C rules it planned C functions with Go's.
func TestScanCFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a cgo program")
	}
	for _, tool := range []string{"gcc", "g++"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the seed needs %s: %v", tool, err)
		}
	}
	bin := filepath.Join(t.TempDir(), "seed")
	build := exec.Command("go", "build", "-o", bin, "./testdata/seed")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	rep, err := scanBinary(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"one":                   "past-frame",
		"one_at2":               "quadword",
		"x_cgo_init":            "c-runtime",
		"inlined_one":           "c-inlined",
		"_ZNK4shop5Price3getEi": "entry-jump",
	}
	// The registry field: SetC's sentinel in the seed's own live checks
	// (testdata/seed: ErrProtected for the glue, ErrInlined for
	// inlined_one and Price::total), "" where SetC patches or only the
	// planner refuses.
	wantRegistry := map[string]string{
		"one": "", "one_at2": "", "x_cgo_init": "protected", "inlined_one": "inlined",
		"_ZNK4shop5Price3getEi": "", "_ZNK4shop5Price5totalEi": "inlined",
	}
	for _, r := range rep.results {
		if w, ok := wantRegistry[r.fn.Name]; ok {
			delete(wantRegistry, r.fn.Name)
			if got := registryWhy(r.policy); sentinelOf(got) != w {
				t.Errorf("%s: registry %q, want %q", r.fn.Name, got, w)
			}
		}
		w, ok := want[r.fn.Name]
		if !ok {
			continue
		}
		delete(want, r.fn.Name)
		got := ""
		if r.patch != nil {
			got = r.patch.Tactic.String()
			if err := checkCPatch(r.fn, r.patch); err != nil {
				t.Errorf("%s: %v", r.fn.Name, err)
			}
		} else {
			got = string(r.refusal.Reason)
		}
		if got != w {
			t.Errorf("%s: %s, want %s", r.fn.Name, got, w)
		}
	}
	if len(want) > 0 || len(wantRegistry) > 0 {
		t.Fatalf("not scanned: %v %v", want, wantRegistry)
	}
}

// checkCPatch is checkPatch plus the C rules: the quadword written lies in
// the function's code and the int3/nop padding the scan kept, and a patch
// past push rbp; mov rbp,rsp has a site that pops rbp first.
func checkCPatch(f dispatch.Func, p *dispatch.Patch) error {
	if err := checkPatch(f, p); err != nil {
		return err
	}
	q := (f.Entry + uintptr(p.Offset)) &^ 7
	if q < f.Entry || q+8 > f.Entry+uintptr(len(f.Bytes)) {
		return fmt.Errorf("quadword %#x leaves the function's %d bytes at %#x", q, len(f.Bytes), f.Entry)
	}
	if p.Tactic == dispatch.PastFrame && (p.Offset != 4 || string(f.Bytes[:4]) != "\x55\x48\x89\xe5" || p.SiteCode[0] != 0x5D) {
		return fmt.Errorf("past-frame at +%d over % x, site % x", p.Offset, f.Bytes[:4], p.SiteCode)
	}
	return nil
}
