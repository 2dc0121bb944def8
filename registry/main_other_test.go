//go:build !(linux && amd64)

package registry_test

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/switchboard-go/switchboard/registry"
)

// TestMain skips every test off linux/amd64, with the reason Switchboard
// gives there, after checking that every entry point refuses with
// ErrUnsupported.
func TestMain(m *testing.M) {
	_, errOrig := registry.Original(fmt.Sprint)
	errs := []error{registry.Set(fmt.Sprint, fmt.Sprint), registry.Reset(fmt.Sprint), errOrig}
	for _, err := range errs {
		var e *registry.Error
		if !errors.As(err, &e) || !errors.Is(err, registry.ErrUnsupported) {
			fmt.Println("FAIL: off linux/amd64 a registry call returned", err)
			os.Exit(1)
		}
	}
	if len(registry.List()) != 0 {
		fmt.Println("FAIL: List is not empty")
		os.Exit(1)
	}
	fmt.Println("skipping all tests:", errs[0])
	os.Exit(0)
}
