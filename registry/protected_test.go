package registry_test

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// TestProtectedPackagesAreTheDependencies fails when the engine gains a
// dependency the generated protected set lacks (or loses one): run
// go generate ./registry.
func TestProtectedPackagesAreTheDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	// internal/, vendor/ and runtime/ are protected by prefix, and differ
	// between toolchain versions.
	byPrefix := func(p string) bool {
		return strings.HasPrefix(p, "internal/") || strings.HasPrefix(p, "vendor/") || strings.HasPrefix(p, "runtime/")
	}
	now := slices.DeleteFunc(strings.Fields(string(out)), byPrefix)
	gen := slices.DeleteFunc(slices.Clone(registry.Dependencies), byPrefix)
	slices.Sort(now)
	if !slices.Equal(now, gen) {
		t.Fatalf("go list -deps: %q\ngenerated:      %q\nrun go generate ./registry", now, gen)
	}
}

// TestDependenciesAreProtected: every function Set itself runs is refused,
// formatting included.
func TestDependenciesAreProtected(t *testing.T) {
	for name, err := range map[string]error{
		"strconv.Itoa": registry.Set(strconv.Itoa, func(int) string { return "" }),
		"fmt.Errorf":   registry.Set(fmt.Errorf, func(string, ...any) error { return nil }),
		"fmt.Sprintf":  registry.Set(fmt.Sprintf, func(string, ...any) string { return "" }),
		"strings.Join": registry.Set(strings.Join, func([]string, string) string { return "" }),
		"errors.Join":  registry.Set(errors.Join, func(...error) error { return nil }),
		"time.Sleep":   registry.Set(time.Sleep, func(time.Duration) {}),
	} {
		if !errors.Is(err, registry.ErrProtected) {
			t.Errorf("Set(%s): %v, want ErrProtected", name, err)
		}
		if name == "time.Sleep" && !strings.Contains(err.Error(), "code is in runtime") {
			t.Errorf("Set(time.Sleep): %v, want it protected as the runtime's code", err)
		}
	}
}

// TestRefusalWhileFormatterPatched: with a formatting function redirected
// to a mock that calls List, a refused Set still wraps its sentinel and
// does not deadlock (no code a user can patch runs under the registry's
// lock, and refusals are formatted only when Error is called).
func TestRefusalWhileFormatterPatched(t *testing.T) {
	errorf := func(format string, args ...any) error {
		_ = registry.List()
		return errors.New("mock")
	}
	sprintf := func(format string, args ...any) string {
		_ = registry.List()
		return "mock"
	}
	for name, err := range map[string]error{"fmt.Errorf": registry.Set(fmt.Errorf, errorf), "fmt.Sprintf": registry.Set(fmt.Sprintf, sprintf)} {
		if err == nil {
			t.Errorf("Set(%s) was accepted", name)
		} else if !errors.Is(err, registry.ErrProtected) {
			t.Errorf("Set(%s): %v, want ErrProtected", name, err)
		}
	}
	defer registry.Reset(fmt.Errorf)
	defer registry.Reset(fmt.Sprintf)
	done := make(chan error, 1)
	go func() { done <- registry.Set(leafInc, nil) }()
	select {
	case err := <-done:
		if !errors.Is(err, registry.ErrNil) {
			t.Fatalf("refused Set: %v, want ErrNil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a refused Set deadlocked")
	}
}
