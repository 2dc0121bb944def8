//go:build !switchboard_guards

package registrytest_test

import (
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/registrytest"
)

// TestSetNeedsGuards: until goroutine-scoped patches are in the build,
// Set fails loudly instead of patching process-wide.
func TestSetNeedsGuards(t *testing.T) {
	ft := &exampleT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		registrytest.Set(ft, level, func(int) int { return 0 })
	}()
	<-done
	if len(ft.fatal) != 1 || !strings.Contains(ft.fatal[0], "ForGoroutine") || !strings.Contains(ft.fatal[0], "level") {
		t.Fatalf("Fatalf calls: %q", ft.fatal)
	}
	if level(1) != 2 {
		t.Fatal("Set patched")
	}
}
