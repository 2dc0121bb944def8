package testmain

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/internal/rebuild"
)

// childEnv marks the rebuilt binary, so that it never rebuilds again.
const childEnv = "SWITCHBOARD_TESTMAIN_REBUILT"

// Run runs the tests and exits with their status. Off linux/amd64, where
// Switchboard patches nothing, it skips them all, saying why.
func Run(m *testing.M) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		fmt.Printf("skipping all tests: unsupported on this platform or toolchain: %s/%s (linux/amd64 only)\n", runtime.GOOS, runtime.GOARCH)
		os.Exit(0)
	}
	if os.Getenv(childEnv) != "" {
		os.Exit(m.Run())
	}
	exe, err := os.Executable()
	if err != nil || rebuild.HasDWARF(exe) {
		os.Exit(m.Run())
	}
	code, err := rebuildAndRun()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testmain: running in this binary (no DWARF: tests that Set will be refused): %v\n", err)
		os.Exit(m.Run())
	}
	os.Exit(code)
}

// rebuildAndRun builds the package's test binary with DWARF and runs it.
// The error is for failures to build or start it; the tests' own failure
// is the exit status.
func rebuildAndRun() (int, error) {
	dir, err := os.MkdirTemp("", "switchboard-testmain-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pkg.test")
	args := append([]string{"test", "-c", "-o", bin}, rebuild.BuildFlags()...)
	cmd := exec.Command(rebuild.GoTool(), append(args, ".")...)
	cmd.Dir, err = os.Getwd() // go test runs a test binary in its package directory
	if err != nil {
		return 0, err
	}
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !rebuild.HasDWARF(bin) {
		return 0, fmt.Errorf("go test -c built %s without DWARF (GOFLAGS=%q)", bin, os.Getenv("GOFLAGS"))
	}
	run := exec.Command(bin, os.Args[1:]...)
	run.Stdin, run.Stdout, run.Stderr = os.Stdin, os.Stdout, os.Stderr
	run.Env = cmd.Env
	err = run.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}
