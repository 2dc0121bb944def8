//go:build linux && amd64

package registry_test

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

// goBuild builds pkg (a path from the module root) with the toolchain
// running the test, so a plugin and its host match.
func goBuild(t *testing.T, out, pkg string, flags ...string) {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, b)
	}
}

// runChild runs a fixture and checks its report: a storm line with flips
// and 0 wrong, and OK at the end.
func runChild(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
	s := string(out)
	storm := regexp.MustCompile(`(?m)^storm: .* (\d+) flips, .* wrong 0$`).FindStringSubmatch(s)
	if storm == nil || storm[1] == "0" || !strings.HasSuffix(strings.TrimSpace(s), "OK") {
		t.Fatalf("no storm line with flips and 0 wrong, or no OK")
	}
	return s
}

// TestPluginStorm builds testdata/pluginprog and its plugin and runs it as
// a child: the flip storm on a function that lives in the plugin, called
// through its func value and directly by the plugin's own code, a
// goroutine-scoped patch of it, and refusals that only the plugin's own
// function table and DWARF can prove (inlined into a plugin function, the
// plugin's copy of fmt, a plugin closure's Original).
func TestPluginStorm(t *testing.T) {
	cgotool.Need(t)
	dir := t.TempDir()
	so, host := filepath.Join(dir, "plug.so"), filepath.Join(dir, "pluginprog")
	goBuild(t, so, "./testdata/pluginprog/plug", "-buildmode=plugin")
	goBuild(t, host, "./testdata/pluginprog")
	out := runChild(t, exec.Command(host, "-duration", (stormTotal(t)/5).String(), so))
	for _, want := range []string{"inlined inside the plugin: ", "copy of fmt.Sprint: ", "closure of the plugin: "} {
		if !strings.Contains(out, want) {
			t.Errorf("no refusal %q", want)
		}
	}

	// A plugin whose file is deleted once loaded: nothing describes its
	// code any more, and every patch of it must be refused with
	// ErrUnsupported (the child checks the sentinel), changing nothing.
	gone := filepath.Join(dir, "gone.so")
	b, err := os.ReadFile(so)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(host, "-unlink", gone)
	b, err = cmd.CombinedOutput()
	t.Logf("%s", b)
	if err != nil || strings.Count(string(b), "refused: ") != 3 || !strings.HasSuffix(strings.TrimSpace(string(b)), "OK") {
		t.Fatalf("%v: %v; want three refusals and OK", cmd, err)
	}
}

// TestCSharedStorm builds testdata/csharedprog's Go library with
// -buildmode=c-shared and its C host with cgo's compiler, and runs the
// host as a child: it loads the library with dlopen, and while two
// pthreads call the library's victim and check every result, the
// library's Go code (the Go runtime and Switchboard live in the .so; the
// executable holds no Go code) storms victim and checks its refusals.
func TestCSharedStorm(t *testing.T) {
	cc := cgotool.Need(t)
	dir := t.TempDir()
	so, host := filepath.Join(dir, "libvictim.so"), filepath.Join(dir, "host")
	goBuild(t, so, "./testdata/csharedprog/lib", "-buildmode=c-shared")
	build := exec.Command(cc, "-O2", "-o", host, "../testdata/csharedprog/host.c", "-ldl", "-lpthread")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build, err, b)
	}
	ms := (stormTotal(t) / 5).Milliseconds()
	out := runChild(t, exec.Command(host, so, strconv.FormatInt(ms, 10)))
	if !regexp.MustCompile(`(?m)^c: 2 pthreads, \d+ calls .* wrong 0$`).MatchString(out) || !strings.Contains(out, "go: OK") {
		t.Fatalf("no C callers' line with 0 wrong, or the library's storm did not pass")
	}
}
