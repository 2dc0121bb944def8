package main

import (
	"testing"

	"github.com/switchboard-go/switchboard/internal/testmain"
)

// TestMain runs the tests in a binary with DWARF, which Set needs to prove
// that a function was not inlined (go test strips it).
func TestMain(m *testing.M) { testmain.Run(m) }
