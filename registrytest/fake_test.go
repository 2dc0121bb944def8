package registrytest_test

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// exampleT is a testing.TB for examples and for tests of failing calls:
// Fatal records the message and ends the goroutine, as a test's would.
type exampleT struct {
	testing.TB // not set: calling a method it does not override panics
	mu         sync.Mutex
	cleanups   []func()
	fatal      []string
	errors     []string
}

func (t *exampleT) Helper()      {}
func (t *exampleT) Name() string { return "example" }
func (t *exampleT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *exampleT) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }
func (t *exampleT) Fatalf(format string, args ...any) {
	t.mu.Lock()
	t.fatal = append(t.fatal, fmt.Sprintf(format, args...))
	t.mu.Unlock()
	runtime.Goexit()
}
func (t *exampleT) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errors = append(t.errors, fmt.Sprintf(format, args...))
}

func (t *exampleT) cleanup() {
	t.mu.Lock()
	cs := slices.Clone(t.cleanups)
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, m := range append(t.fatal, t.errors...) {
		fmt.Println("test failed:", m)
	}
}
