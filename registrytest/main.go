package registrytest

import (
	"testing"

	"github.com/switchboard-go/switchboard/internal/testmain"
)

// Main runs a package's tests in a test binary that keeps its DWARF:
//
//	func TestMain(m *testing.M) { registrytest.Main(m) }
//
// go test links test binaries without DWARF, and without it Switchboard
// cannot prove that a function was not inlined, so every patch is refused
// (ErrInlined) unless the tests are built with -gcflags=all=-l. When the
// running test binary has no DWARF, Main builds it once more with
// go test -c (same package, same build settings: -race, -tags, -gcflags,
// -cover, ...), runs it with the same arguments and exits with its status.
// It costs one extra link per package; the compiled packages come from the
// build cache.
func Main(m *testing.M) { testmain.Run(m) }
