//go:build !(linux && amd64)

package switchboard

import (
	"fmt"
	"os"
	"runtime"
	"testing"
)

// TestMain skips every test off linux/amd64, where Switchboard refuses to
// patch: the tests exercise live patching.
func TestMain(m *testing.M) {
	fmt.Printf("skipping all tests: unsupported on this platform or toolchain: %s/%s (linux/amd64 only)\n", runtime.GOOS, runtime.GOARCH)
	os.Exit(0)
}
