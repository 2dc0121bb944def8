package hotfix_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-go/switchboard/hotfix"
	"github.com/switchboard-go/switchboard/hotfix/internal/victim"
	"github.com/switchboard-go/switchboard/registry"
)

// buildPlugin builds the plugin package pkg (under ./internal) into dir,
// as a fix's author would: from within this module, with the toolchain
// running the test.
func buildPlugin(t *testing.T, dir, pkg string) string {
	t.Helper()
	so, ok := tryBuildPlugin(t, ".", dir, "./internal/"+pkg, pkg)
	if !ok {
		t.Fatal("build failed")
	}
	return so
}

// tryBuildPlugin runs go build -buildmode=plugin in src for target, with
// env added, writing dir/name.so.
func tryBuildPlugin(t *testing.T, src, dir, target, name string, env ...string) (string, bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	needCgo(t)
	out := filepath.Join(dir, name+".so")
	args := []string{"build", "-buildmode=plugin", "-o", out}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, target)...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Logf("%v: %v\n%s", cmd, err, b)
		return "", false
	}
	return out, true
}

type state struct {
	Greeting string
	Twice    int
	Thrice   int
	Code     [3][8]byte
	List     []registry.Redirect
}

func now() state {
	return state{victim.Greeting("go"), victim.Twice(4), victim.Thrice(4),
		[3][8]byte{code(victim.Greeting), code(victim.Twice), code(victim.Thrice)}, registry.List()}
}

// code reads a function's first eight bytes.
func code[F any](fn F) [8]byte {
	pc := **(**uintptr)(ptrOf(&fn))
	return *(*[8]byte)(ptrFromPC(pc))
}

func TestLoadUndo(t *testing.T) {
	so := buildPlugin(t, t.TempDir(), "testfix")
	before := now()
	fix, err := hotfix.Load(so)
	if err != nil {
		t.Fatal(err)
	}
	if got := victim.Greeting("go"); got != "hello, GO!" {
		t.Fatalf("Greeting after Load = %q", got)
	}
	if got := victim.Twice(4); got != 9 {
		t.Fatalf("Twice after Load = %d", got)
	}
	if fix.Patches != 2 {
		t.Errorf("fix.Patches = %d, want 2", fix.Patches)
	}
	active := map[string]bool{}
	for _, r := range registry.List() {
		active[r.Func] = r.Active
	}
	if !active["github.com/switchboard-go/switchboard/hotfix/internal/victim.Greeting"] || !active["github.com/switchboard-go/switchboard/hotfix/internal/victim.Twice"] {
		t.Errorf("List after Load: %v", registry.List())
	}
	if err := fix.Undo(); err != nil {
		t.Fatal(err)
	}
	after := now()
	if before.Greeting != after.Greeting || before.Twice != after.Twice || before.Code != after.Code {
		t.Fatalf("Undo left %+v, want %+v", after, before)
	}
	// Loading the same file again runs its Patches again.
	fix, err = hotfix.Load(so)
	if err != nil {
		t.Fatal(err)
	}
	if got := victim.Greeting("go"); got != "hello, GO!" {
		t.Fatalf("Greeting after the second Load = %q", got)
	}
	if err := fix.Undo(); err != nil {
		t.Fatal(err)
	}
	if err := fix.Undo(); !errors.Is(err, registry.ErrBatchState) {
		t.Errorf("second Undo: %v, want ErrBatchState", err)
	}

	// Refusals from the plugin's own Patches and from Commit change nothing.
	for _, tc := range []struct {
		mode string
		want []error
	}{
		{"protected", []error{hotfix.ErrPatches, registry.ErrProtected}},
		{"cycle", []error{hotfix.ErrCommit, registry.ErrCycle}},
	} {
		t.Setenv("HOTFIX_TEST_MODE", tc.mode)
		before := now()
		_, err := hotfix.Load(so)
		t.Log(err)
		for _, w := range tc.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v does not wrap %v", tc.mode, err, w)
			}
		}
		if diff := cmp.Diff(before, now()); diff != "" {
			t.Errorf("%s: refused Load changed things (-before +after):\n%s", tc.mode, diff)
		}
	}
}

func TestLoadRefusesPluginWithoutPatches(t *testing.T) {
	so := buildPlugin(t, t.TempDir(), "nopatches")
	before := now()
	_, err := hotfix.Load(so)
	t.Log(err)
	var he *hotfix.Error
	if !errors.Is(err, hotfix.ErrNoPatches) || !errors.As(err, &he) || he.Path != so {
		t.Fatalf("got %v, want a *hotfix.Error wrapping ErrNoPatches", err)
	}
	if diff := cmp.Diff(before, now()); diff != "" {
		t.Errorf("changed (-before +after):\n%s", diff)
	}
}

// TestLoadRefusesOtherToolchain builds the fix with Go 1.27 (or 1.26 when
// the test runs under 1.27): plugin.Open refuses it, and Load says so.
func TestLoadRefusesOtherToolchain(t *testing.T) {
	other := "go1.27.3"
	if strings.HasPrefix(runtimeVersion(), "go1.27") {
		other = "go1.26.8"
	}
	dir := t.TempDir()
	// Built from its file, it gets a plugin path of its own: plugin.Open
	// refuses a second plugin of the path TestLoadUndo loaded before it
	// looks at versions.
	so, ok := tryBuildPlugin(t, ".", dir, "./internal/testfix/main.go", "other", "GOTOOLCHAIN="+other)
	if !ok {
		t.Skip("no " + other + " toolchain here")
	}
	before := now()
	_, err := hotfix.Load(so)
	t.Log(err)
	if !errors.Is(err, hotfix.ErrIncompatible) || !strings.Contains(err.Error(), other) {
		t.Fatalf("got %v, want ErrIncompatible naming %s", err, other)
	}
	if diff := cmp.Diff(before, now()); diff != "" {
		t.Errorf("changed (-before +after):\n%s", diff)
	}
}

// TestLoadRefusesOtherPackageVersion builds the fix from a copy of this
// module whose victim package differs: same toolchain, same module
// versions on paper, so plugin.Open's own package check refuses it.
func TestLoadRefusesOtherPackageVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	needCgo(t)
	src := filepath.Join(t.TempDir(), "module")
	if out, err := exec.Command("cp", "-r", "..", src).CombinedOutput(); err != nil {
		t.Fatalf("copying the module: %v\n%s", err, out)
	}
	f := filepath.Join(src, "hotfix", "internal", "victim", "victim.go")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("\n// Added is what makes this version differ.\nfunc Added() int { return 1 }\n")...)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// From its file, for a plugin path of its own (see above).
	so, ok := tryBuildPlugin(t, filepath.Join(src, "hotfix"), dir, "./internal/testfix/main.go", "changed")
	if !ok {
		t.Fatal("build failed")
	}
	before := now()
	_, err = hotfix.Load(so)
	t.Log(err)
	if !errors.Is(err, hotfix.ErrIncompatible) || !strings.Contains(err.Error(), "plugin.Open") || !strings.Contains(err.Error(), "victim") {
		t.Fatalf("got %v, want ErrIncompatible with plugin.Open's error naming the victim package", err)
	}
	if diff := cmp.Diff(before, now()); diff != "" {
		t.Errorf("changed (-before +after):\n%s", diff)
	}
}

func TestLoadRefusesUntrustedFiles(t *testing.T) {
	dir := t.TempDir()
	so := filepath.Join(dir, "fix.so")
	if err := os.WriteFile(so, []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	inOpen := filepath.Join(open, "fix.so")
	if err := os.WriteFile(inOpen, []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		setup   func() error
		path    string
		want    error
		culprit string
	}{
		{"group-writable file", func() error { return os.Chmod(so, 0o664) }, so, hotfix.ErrInsecure, so},
		{"world-writable file", func() error { return os.Chmod(so, 0o646) }, so, hotfix.ErrInsecure, so},
		{"world-writable directory", func() error { return os.Chmod(open, 0o777) }, inOpen, hotfix.ErrInsecure, open},
		{"group-writable directory", func() error { return os.Chmod(open, 0o775) }, inOpen, hotfix.ErrInsecure, open},
		{"file of another user", func() error { return os.Chown(so, 4321, -1) }, so, hotfix.ErrInsecure, so},
		{"directory of another user", func() error { return os.Chown(open, 4321, -1) }, inOpen, hotfix.ErrInsecure, open},
		{"symlink to a world-writable file", func() error {
			return errors.Join(os.Chmod(so, 0o666), os.Symlink(so, filepath.Join(dir, "link.so")))
		}, filepath.Join(dir, "link.so"), hotfix.ErrInsecure, so},
		{"trusted, but not a plugin", nil, so, hotfix.ErrOpen, ""},
		{"sticky world-writable directory, like /tmp: trusted", func() error { return os.Chmod(open, 0o777|os.ModeSticky) }, inOpen, hotfix.ErrOpen, ""},
		{"missing", nil, filepath.Join(dir, "missing.so"), hotfix.ErrOpen, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Reset to trusted, then spoil one thing.
			if err := errors.Join(os.Chmod(so, 0o644), os.Chmod(open, 0o755), os.Lchown(so, os.Geteuid(), -1), os.Lchown(open, os.Geteuid(), -1)); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				if err := tc.setup(); err != nil {
					if os.Geteuid() != 0 && errors.Is(err, os.ErrPermission) {
						t.Skip("needs root to chown:", err)
					}
					t.Fatal(err)
				}
			}
			before := now()
			_, err := hotfix.Load(tc.path)
			t.Log(err)
			var he *hotfix.Error
			if !errors.Is(err, tc.want) || !errors.As(err, &he) {
				t.Fatalf("got %v, want a *hotfix.Error wrapping %v", err, tc.want)
			}
			var pe *hotfix.PermError
			if tc.culprit == "" && errors.As(err, &pe) {
				t.Errorf("refused for permissions: %v", pe)
			}
			if tc.culprit != "" && (!errors.As(err, &pe) || pe.Path != tc.culprit) {
				t.Errorf("PermError %+v, want one naming %s", pe, tc.culprit)
			}
			if diff := cmp.Diff(before, now()); diff != "" {
				t.Errorf("changed (-before +after):\n%s", diff)
			}
		})
	}
}

// needCgo skips a test that builds a plugin where cgo is off (no C
// compiler): Go plugins need it.
func needCgo(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "env", "CGO_ENABLED").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Skip("plugins need cgo (a C compiler); go env CGO_ENABLED =", strings.TrimSpace(string(out)))
	}
}
