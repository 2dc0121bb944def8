package switchboard

import (
	"testing"

	"github.com/switchboard-go/switchboard/internal/testmain"
)

// TestMain skips the tests off linux/amd64, and runs them in a binary
// with DWARF, as every package that patches does.
func TestMain(m *testing.M) { testmain.Run(m) }
