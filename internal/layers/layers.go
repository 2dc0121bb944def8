package layers

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/switchboard-go/switchboard/registry"
)

// A Target is a function in a scope: what one stack of layers patches.
type Target struct {
	Fn reflect.Value
	// Scope tells stacks of one function apart; nil is process-wide.
	Scope any
	// Opts are passed to registry.SetValue.
	Opts []registry.Option
	// Reset undoes the scope's patch when its last layer goes; nil means
	// registry.ResetValue(Fn).
	Reset func() error
}

// A Layer is one replacement of one function in one scope.
type Layer struct {
	target Target
	key    key
	impl   reflect.Value
	owner  any
}

type key struct {
	entry uintptr
	scope any
}

var state struct {
	mu     sync.Mutex
	stacks map[key][]*Layer // bottom first
}

// Push redirects the target to impl (func Values of one type, as
// registry.SetValue takes them) on top of the layers already there. owner
// groups layers for Suspend. A refused patch changes nothing.
func Push(owner any, tg Target, impl reflect.Value) (*Layer, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if err := registry.SetValue(tg.Fn, impl, tg.Opts...); err != nil {
		return nil, err
	}
	l := &Layer{target: tg, key: key{tg.Fn.Pointer(), tg.Scope}, impl: impl, owner: owner}
	if state.stacks == nil {
		state.stacks = map[key][]*Layer{}
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
	return apply(l.target, s)
}

// apply puts the top of the stack s in force on the target.
func apply(tg Target, s []*Layer) error {
	switch {
	case len(s) > 0:
		return registry.SetValue(tg.Fn, s[len(s)-1].impl, tg.Opts...)
	case tg.Reset != nil:
		return tg.Reset()
	}
	return registry.ResetValue(tg.Fn)
}

// Suspend takes every layer of owner out of force, as if popped, until
// the returned resume runs: gomonkey's Origin.
func Suspend(owner any) (resume func() error, err error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	var touched []key
	for k, s := range state.stacks {
		if !slices.ContainsFunc(s, func(l *Layer) bool { return l.owner == owner }) {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(s), func(l *Layer) bool { return l.owner == owner })
		if err := apply(s[0].target, rest); err != nil {
			for _, k := range touched {
				apply(state.stacks[k][0].target, state.stacks[k])
			}
			return nil, fmt.Errorf("suspend %v: %w", s[0].target.Fn.Type(), err)
		}
		touched = append(touched, k)
	}
	return func() error {
		state.mu.Lock()
		defer state.mu.Unlock()
		var first error
		for _, k := range touched {
			if s := state.stacks[k]; len(s) > 0 {
				if err := apply(s[0].target, s); err != nil && first == nil {
					first = err
				}
			}
		}
		return first
	}, nil
}
