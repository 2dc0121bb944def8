package hotfix_test

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWalkthrough runs the README's steps: build the service and the fix
// plugin with the same toolchain from this module, start the service,
// check the bug, SIGHUP to apply the fix, check it is fixed and listed,
// SIGHUP to undo it, check the bug is back.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a service and a plugin")
	}
	if out, err := exec.Command("go", "env", "CGO_ENABLED").Output(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Skip("plugins need cgo (a C compiler); go env CGO_ENABLED =", strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	fixes := filepath.Join(dir, "fixes")
	if err := os.Mkdir(fixes, 0o755); err != nil {
		t.Fatal(err)
	}
	service := filepath.Join(dir, "service")
	run(t, "go", "build", "-o", service, "./service")
	run(t, "go", "build", "-buildmode=plugin", "-o", filepath.Join(fixes, "bulk-discount.so"), "./fix")

	cmd := exec.Command(service, "-addr", "127.0.0.1:0", "-fixes", fixes)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix) {
				t.Fatalf("service said %q, want %q...", l, prefix)
			}
			t.Log(l)
			return l
		case <-time.After(60 * time.Second):
			t.Fatalf("service did not say %q", prefix)
		}
		return ""
	}
	addr := strings.TrimPrefix(expect("service: listening on "), "service: listening on ")
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	quote := func(want string) {
		t.Helper()
		if got := get("/quote?qty=10&unit=100"); got != want {
			t.Fatalf("quote for 10 x 100 = %s, want %s", got, want)
		}
		if got := get("/quote?qty=9&unit=100"); got != "900" {
			t.Fatalf("quote for 9 x 100 = %s, want 900", got)
		}
	}

	quote("1000") // the bug: no discount at 10 items
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	expect("service: applied " + filepath.Join(fixes, "bulk-discount.so") + " (1 patches)")
	quote("900")
	if l := get("/debug/switchboard/?format=json"); !strings.Contains(l, `"func": "github.com/switchboard-go/switchboard/examples/hotfix/pricing.Quote"`) || !strings.Contains(l, `"active": true`) {
		t.Errorf("debug handler does not list the fix:\n%s", l)
	}
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	expect("service: undone ")
	quote("1000")
	// And again: the plugin is still loaded, its Patches runs again.
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	expect("service: applied ")
	quote("900")
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
