//go:build !switchboard_guards

package registrytest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/switchboard-go/switchboard/internal/layers"
)

// errNoGuards: goroutine-scoped patches (registry.ForGoroutine) are not
// in this build yet.
var errNoGuards = errors.New("goroutine-scoped patches (registry.ForGoroutine) are not available in this build; use SetGlobal")

func scoped(testing.TB, reflect.Value) (layers.Target, error) {
	return layers.Target{}, errNoGuards
}
