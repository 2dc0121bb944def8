package registrytest

import (
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/switchboard-go/switchboard/internal/layers"
	"github.com/switchboard-go/switchboard/registry"
)

// treeProbe names the goroutine tree its caller belongs to. Each tree
// registrytest makes gets a scoped patch of it returning the tree's id;
// outside every such tree it returns 0. Patches of one function in one
// tree share one stack of layers, whichever test made them: a subtest
// started after its parent's Set is in the parent's tree.
//
//go:noinline
func treeProbe() uint64 { return probeZero() }

//go:noinline
func probeZero() uint64 { return 0 }

var trees atomic.Uint64

// scoped is the target of a goroutine-tree patch made by test t. The
// first scoped patch of a goroutine in no tree puts it in a new one (the
// engine labels it), marked by a patch of treeProbe that the test's
// cleanup removes last.
func scoped(t testing.TB, fn reflect.Value) (layers.Target, error) {
	id := treeProbe()
	if id == 0 {
		id = trees.Add(1)
		if err := registry.SetWith(treeProbe, func() uint64 { return id }, registry.ForGoroutine()); err != nil {
			return layers.Target{}, err
		}
		t.Cleanup(func() {
			if err := registry.ResetWith(treeProbe, registry.ForGoroutine()); err != nil {
				t.Errorf("registrytest: removing the goroutine tree's mark: %v", err)
			}
		})
	}
	return layers.Target{
		Fn:    fn,
		Scope: id,
		Opts:  []registry.Option{registry.ForGoroutine()},
		Reset: func() error { return registry.ResetWith(fn.Interface(), registry.ForGoroutine()) },
	}, nil
}
