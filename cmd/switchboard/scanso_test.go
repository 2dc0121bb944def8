//go:build linux && amd64

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/internal/cgotool"
)

// TestScanSharedObjects scans a Go plugin and a Go c-shared library (the
// fixtures of registry's TestPluginStorm and TestCSharedStorm) and checks
// that scan agrees with registry on the functions the live process
// patched: the child programs load the object, Set each function and print
// its file address and the tactic List reports; scan must find a function
// at that address, patchable, with Original working. Scan places a shared
// object at sharedBase: at its link-time address 0 (before) it refused
// 1.6% of the plugin's functions for want of a relay window below them,
// which the loaded object has.
func TestScanSharedObjects(t *testing.T) {
	cc := cgotool.Need(t)
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, b)
		}
	}
	plug, lib := filepath.Join(dir, "plug.so"), filepath.Join(dir, "libvictim.so")
	run("go", "build", "-buildmode=plugin", "-o", plug, "./testdata/pluginprog/plug")
	run("go", "build", "-o", filepath.Join(dir, "pluginprog"), "./testdata/pluginprog")
	run("go", "build", "-buildmode=c-shared", "-o", lib, "./testdata/csharedprog/lib")
	run(cc, "-O2", "-o", filepath.Join(dir, "host"), "testdata/csharedprog/host.c", "-ldl", "-lpthread")

	for _, c := range []struct {
		so    string
		child *exec.Cmd
		funcs int // functions the child patches
	}{
		{plug, exec.Command(filepath.Join(dir, "pluginprog"), "-duration", "200ms", plug), 3},
		{lib, exec.Command(filepath.Join(dir, "host"), lib, "200"), 1},
	} {
		t.Run(filepath.Base(c.so), func(t *testing.T) {
			out, err := c.child.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", c.child, err, out)
			}
			live := regexp.MustCompile(`(?m)^tactic: (\S+) file (0x[0-9a-f]+) (\S+)$`).FindAllStringSubmatch(string(out), -1)
			if len(live) != c.funcs {
				t.Fatalf("want %d tactic lines from the child, got %q\n%s", c.funcs, live, out)
			}
			rep, err := scanBinary(c.so, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range live {
				off, _ := strconv.ParseUint(l[2], 0, 64)
				var found bool
				for _, r := range rep.results {
					if uint64(r.fn.Entry) != sharedBase+off {
						continue
					}
					found = true
					switch {
					case !strings.HasSuffix(r.fn.Name, "."+l[1]):
						t.Errorf("scan has %s at %#x, the child %s", r.fn.Name, off, l[1])
					case r.patch == nil:
						t.Errorf("%s: registry patched it (%s), scan refuses it: %v", l[1], l[3], r.refusal)
					case r.original != nil:
						t.Errorf("%s: registry's Original works, scan says %v", l[1], r.original)
					case r.patch.Tactic.String() != l[3]:
						// The tactic also depends on which relay windows the
						// live address space leaves free.
						t.Logf("%s: registry used %s, scan plans %s", l[1], l[3], r.patch.Tactic)
					default:
						t.Logf("%s: %s in both", l[1], l[3])
					}
				}
				if !found {
					t.Errorf("scan lists no function at %#x (%s)", off, l[1])
				}
			}
		})
	}
}
