package testmain

import (
	"os"
	"testing"

	"github.com/switchboard-go/switchboard/internal/rebuild"
)

func TestMain(m *testing.M) { Run(m) }

// TestRunsWithDWARF: under go test (which strips DWARF), Run rebuilt this
// binary with DWARF and ran the tests there.
func TestRunsWithDWARF(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !rebuild.HasDWARF(exe) {
		t.Fatalf("%s has no DWARF", exe)
	}
	t.Logf("%s=%q", childEnv, os.Getenv(childEnv))
}
