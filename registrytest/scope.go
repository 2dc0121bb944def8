//go:build switchboard_guards

package registrytest

import (
	"reflect"
	"testing"

	"github.com/switchboard-go/switchboard/internal/layers"
	"github.com/switchboard-go/switchboard/registry"
)

// scoped is the target of a goroutine-tree patch made by test t: one
// stack of layers per test, set and reset with registry.ForGoroutine.
func scoped(t testing.TB, fn reflect.Value) (layers.Target, error) {
	return layers.Target{Fn: fn, Scope: t, Opts: []registry.Option{registry.ForGoroutine()}}, nil
}
