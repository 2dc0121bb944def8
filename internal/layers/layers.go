// Package layers keeps, for each function patched through Switchboard's
// test helpers (compat/gomonkey, registrytest), the stack of replacements
// set on it, so that undoing one restores the one below it, whatever order
// the undos come in: the undo semantics of gomonkey and mockey.
//
// Only patches made through this package are known: a registry.Set made
// directly on the same function is overwritten by the next Push or Pop.
package layers

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/switchboard-go/switchboard/registry"
)

// A Layer is one replacement of one function.
type Layer struct {
	fn    reflect.Value
	key   uintptr
	impl  reflect.Value
	owner any
}

var state struct {
	mu     sync.Mutex
	stacks map[uintptr][]*Layer // by entry, bottom first
}

// Push redirects fn to impl (func Values of one type, as registry.SetValue
// takes them) on top of the layers already there. owner groups layers for
// Suspend. A refused patch changes nothing.
func Push(owner any, fn, impl reflect.Value, opts ...registry.Option) (*Layer, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if err := registry.SetValue(fn, impl, opts...); err != nil {
		return nil, err
	}
	l := &Layer{fn: fn, key: fn.Pointer(), impl: impl, owner: owner}
	if state.stacks == nil {
		state.stacks = map[uintptr][]*Layer{}
	}
	state.stacks[l.key] = append(state.stacks[l.key], l)
	return l, nil
}

// Pop removes the layer: its function goes to the layer now on top, or to
// its original when none is left. Popping a layer twice does nothing.
func (l *Layer) Pop() error {
	state.mu.Lock()
	defer state.mu.Unlock()
	s := state.stacks[l.key]
	i := slices.Index(s, l)
	if i < 0 {
		return nil
	}
	s = slices.Delete(s, i, i+1)
	state.stacks[l.key] = s
	if i < len(s) {
		return nil // a layer above it stays in force
	}
	return apply(l.fn, s)
}

// apply puts the top of the stack s in force on fn.
func apply(fn reflect.Value, s []*Layer) error {
	if len(s) == 0 {
		return registry.ResetValue(fn)
	}
	return registry.SetValue(fn, s[len(s)-1].impl)
}

// Suspend takes every layer of owner out of force, as if popped, until
// the returned resume runs: gomonkey's Origin.
func Suspend(owner any) (resume func() error, err error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	var touched []uintptr
	for key, s := range state.stacks {
		if !slices.ContainsFunc(s, func(l *Layer) bool { return l.owner == owner }) {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(s), func(l *Layer) bool { return l.owner == owner })
		if err := apply(s[0].fn, rest); err != nil {
			for _, k := range touched {
				apply(state.stacks[k][0].fn, state.stacks[k])
			}
			return nil, fmt.Errorf("suspend %v: %w", s[0].fn.Type(), err)
		}
		touched = append(touched, key)
	}
	return func() error {
		state.mu.Lock()
		defer state.mu.Unlock()
		var first error
		for _, key := range touched {
			if s := state.stacks[key]; len(s) > 0 {
				if err := apply(s[0].fn, s); err != nil && first == nil {
					first = err
				}
			}
		}
		return first
	}, nil
}
