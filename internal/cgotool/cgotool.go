// Package cgotool lets a test that builds a Go plugin or a c-shared
// library and its C host find the toolchain those need, or skip. It is
// for tests only and touches nothing else.
package cgotool

import (
	"os/exec"
	"strings"
	"testing"
)

// Need skips t under -short (such builds take seconds) and where cgo or
// its C compiler is missing; otherwise it returns the C compiler's path.
func Need(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin or a c-shared library and its host")
	}
	out, err := exec.Command("go", "env", "CGO_ENABLED", "CC").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || f[0] != "1" {
		t.Skipf("plugins and c-shared libraries need cgo (go env CGO_ENABLED CC = %q, %v)", out, err)
	}
	cc, err := exec.LookPath(f[1])
	if err != nil {
		t.Skipf("plugins and c-shared libraries need cgo's C compiler %s: %v", f[1], err)
	}
	return cc
}
