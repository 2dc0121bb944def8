package registry_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/registry"
)

// TestGenericMethods patches methods of a generic type per instantiation:
// int, string and two struct instantiations, each sharing its shape with
// another (myInt, pt2) that must keep its code; then by receiver, by
// goroutine tree, and removes them with ResetWith and Reset.
func TestGenericMethods(t *testing.T) {
	defer func() {
		for _, err := range []error{registry.Reset((*list[int]).size), registry.Reset((*list[myInt]).size),
			registry.Reset((*list[string]).size), registry.Reset((*list[pt]).size), registry.Reset((*list[pt2]).size)} {
			must(t, err)
		}
	}()
	li, li2, lm := &list[int]{n: 1}, &list[int]{n: 10}, &list[myInt]{n: 2}
	ls, lp, lp2 := &list[string]{n: 3}, &list[pt]{n: 4}, &list[pt2]{n: 5}
	var viaIface sizer[int] = li
	bound := lp.size
	all := func() string {
		return fmt.Sprint(li.size(7, 3), li2.size(7, 3), lm.size(7, 3), ls.size("abc", 3), lp.size(pt{1, 2}, 3), lp2.size(pt2{1, 2}, 3),
			" ", viaIface.size(8, 3), bound(pt{1, 4}, 3), (*list[string]).size(ls, "ab", 3))
	}
	if got, want := all(), "7 16 8 9 10 11 7 10 9"; got != want {
		t.Fatalf("before: %s, want %s", got, want)
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"int", func() error {
			return registry.Set((*list[int]).size, func(l *list[int], v, x int) int { return -(x*1000 + v*10 + l.n) })
		}, "-3071 -3080 8 9 10 11 -3081 10 9"},
		{"string", func() error {
			return registry.Set((*list[string]).size, func(l *list[string], v string, x int) int { return -(x*1000 + len(v)*10 + l.n) })
		}, "-3071 -3080 8 -3033 10 11 -3081 10 -3023"},
		{"pt", func() error {
			return registry.Set((*list[pt]).size, func(l *list[pt], v pt, x int) int { return -(x*1000 + v.a*100 + v.b*10 + l.n) })
		}, "-3071 -3080 8 -3033 -3124 11 -3081 -3144 -3023"},
		{"pt2, same shape as pt", func() error {
			return registry.Set((*list[pt2]).size, func(l *list[pt2], v pt2, x int) int { return 50000 + v.a + v.b + x + l.n })
		}, "-3071 -3080 8 -3033 -3124 50011 -3081 -3144 -3023"},
		{"receiver li2 of list[int]", func() error {
			return registry.SetWith((*list[int]).size, func(l *list[int], v, x int) int { return 70000 + v + x + l.n }, registry.ForReceiver(li2))
		}, "-3071 70020 8 -3033 -3124 50011 -3081 -3144 -3023"},
		{"ResetWith the instantiation's global-scope patch", func() error { return registry.ResetWith((*list[int]).size) },
			"7 70020 8 -3033 -3124 50011 7 -3144 -3023"},
		{"ResetWith receiver", func() error { return registry.ResetWith((*list[int]).size, registry.ForReceiver(li2)) },
			"7 16 8 -3033 -3124 50011 7 -3144 -3023"},
		{"Reset pt", func() error { return registry.Reset((*list[pt]).size) }, "7 16 8 -3033 10 50011 7 10 -3023"},
		{"myInt", func() error {
			return registry.Set((*list[myInt]).size, func(l *list[myInt], v myInt, x int) int { return int(v) * 1000 })
		}, "7 16 7000 -3033 10 50011 7 10 -3023"},
	}
	for _, s := range steps {
		must(t, s.do())
		if got := all(); got != s.want {
			t.Fatalf("after %s: %s, want %s", s.name, got, s.want)
		}
	}

	// List: one row per patch, most specific first, each naming its
	// instantiation (a Set of an instantiation is scoped to it).
	must(t, registry.Set((*list[int]).size, func(l *list[int], v, x int) int { return 1 }))
	must(t, registry.SetWith((*list[int]).size, func(l *list[int], v, x int) int { return 2 }, registry.ForReceiver(li2)))
	var scopes []string
	for _, r := range registry.List() {
		if strings.HasSuffix(r.Func, ".(*list[go.shape.int]).size") && r.Active {
			scopes = append(scopes, r.Scope)
		}
	}
	inst := "instantiation " + pkgPath
	if len(scopes) != 3 || !strings.HasPrefix(scopes[0], inst+".(*list[int]).size + receiver 0x") ||
		!slices.Contains(scopes[1:], inst+".(*list[int]).size") || !slices.Contains(scopes[1:], inst+".(*list["+pkgPath+".myInt]).size") {
		t.Errorf("List scopes of the int shape's size, want the receiver's first, then both instantiations: %q", scopes)
	}

	// A goroutine tree on one instantiation: the tree's calls of list[pt2]
	// only.
	res := make(chan [3]int)
	go func() {
		must(t, registry.SetWith((*list[pt2]).size, func(l *list[pt2], v pt2, x int) int { return -1 }, registry.ForGoroutine()))
		res <- [3]int{lp2.size(pt2{1, 2}, 3), lp.size(pt{1, 2}, 3), li.size(7, 3)}
	}()
	if got, want := <-res, [3]int{-1, 10, 1}; got != want {
		t.Errorf("in the tree: %v, want %v", got, want)
	}
	if got := lp2.size(pt2{1, 2}, 3); got != 50011 {
		t.Errorf("outside the tree: %d, want 50011", got)
	}
	// A receiver in a float register: the dictionary comes first, in RAX.
	defer registry.Reset(celsius[int].scale)
	must(t, registry.Set(celsius[int].scale, func(c celsius[int], x int) float64 { return -float64(c) - float64(x) }))
	if got, want := [2]float64{celsius[int](2.5).scale(4), celsius[myInt](2.5).scale(4)}, [2]float64{-6.5, 10}; got != want {
		t.Errorf("celsius[int], celsius[myInt] = %v, want %v", got, want)
	}

	// Reset removes every patch of the instantiation, no other.
	must(t, registry.Reset((*list[int]).size))
	if got, want := all(), "7 16 7000 -3033 10 50011 7 10 -3023"; got != want {
		t.Errorf("after Reset of list[int]: %s, want %s", got, want)
	}
}

const pkgPath = "github.com/switchboard-go/switchboard/registry_test"
