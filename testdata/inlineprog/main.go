// Command inlineprog reports, for small functions the compiler inlines
// and for //go:noinline twins of them, whether Set refuses them with
// ErrInlined or patches them so that their callers see the replacement.
// TestInliningByBuildKind builds it with and without DWARF and inlining.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/testdata/inlineprog/flat"
	"github.com/switchboard-go/switchboard/testdata/inlineprog/lib"
)

func triple(x int) int { return x * 3 }

func addOne(x int) int { return x + 1 }

func sum(xs ...int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

type box struct{ v int }

func (b *box) get() int  { return b.v }
func (b *box) set(v int) { b.v = v }

//go:noinline
func tripleNI(x int) int { return x * 3 }

//go:noinline
func addOneNI(x int) int { return x + 1 }

//go:noinline
func sumNI(xs ...int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

//go:noinline
func (b *box) getNI() int { return b.v }

//go:noinline
func (b *box) setNI(v int) { b.v = v }

// The callers: each calls its victim the way the outside tester did.

//go:noinline
func callTriple(a int) int { return triple(a) + 1 }

//go:noinline
func callAddOne(a int) int { return addOne(a) + 1 }

//go:noinline
func callSum(a int) int { return sum(a, 1) }

//go:noinline
func callGet(b *box) int { return b.get() }

//go:noinline
func callSet(b *box, v int) int { b.set(v); return b.v }

//go:noinline
func callTripleNI(a int) int { return tripleNI(a) + 1 }

//go:noinline
func callAddOneNI(a int) int { return addOneNI(a) + 1 }

//go:noinline
func callSumNI(a int) int { return sumNI(a, 1) }

//go:noinline
func callGetNI(b *box) int { return b.getNI() }

//go:noinline
func callSetNI(b *box, v int) int { b.setNI(v); return b.v }

//go:noinline
func callAddTwo(a int) int { return lib.AddTwo(a) + 1 }

var forward = lib.Forward

// embeds promotes lib.Counter's methods, unexported ones included: the
// compiler generates main's wrappers for them here.
type embeds struct{ lib.Counter }

//go:noinline
func callGen(xs []int) int { return lib.Gen(xs) + 1 }

//go:noinline
func callTabbed(a int) int { return lib.Tabbed(a) + 1 }

//go:noinline
func callUpper(s string) string { return lib.Upper(s) }

//go:noinline
func callBlocked(a int) int { return lib.Blocked(a) + 1 }

//go:noinline
func callForward(a int) int { return forward(a) + 1 }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "shapes" {
		shapes(len(os.Args))
		return
	}
	report("triple", registry.Set(triple, func(x int) int { return -x }), func() bool { return callTriple(2) == -1 })
	report("addOne", registry.Set(addOne, func(x int) int { return -x }), func() bool { return callAddOne(2) == -1 })
	report("sum", registry.Set(sum, func(xs ...int) int { return -1 }), func() bool { return callSum(2) == -1 })
	report("get", registry.Set((*box).get, func(*box) int { return -1 }), func() bool { return callGet(&box{v: 2}) == -1 })
	report("set", registry.Set((*box).set, func(b *box, v int) { b.v = -v }), func() bool { return callSet(&box{}, 2) == -2 })
	report("lib.AddTwo", registry.Set(lib.AddTwo, func(x int) int { return -x }), func() bool { return callAddTwo(2) == -1 })
	report("lib.Forward", registry.Set(lib.Forward, func(x int) int { return -x }), func() bool { return callForward(2) == -1 })
	report("lib.genHelper", registry.Set(lib.GenHelper(), func(x int) int { return -x }), func() bool { return callGen(make([]int, 2)) == -1 })
	report("lib.(*Counter).kind", registry.Set(lib.KindMethod(), func(*lib.Counter) int { return -1 }), func() bool { return lib.Kind(&embeds{}) == -1 })
	report("lib.Tabbed", registry.Set(lib.Tabbed, func(x int) int { return -x }), func() bool { return callTabbed(2) == -1 })
	report("lib.Blocked", registry.Set(lib.Blocked, func(x int) int { return -x }), func() bool { return callBlocked(2) == -1 })
	report("lib.Upper", registry.Set(lib.Upper, func(s string) string { return "X" }), func() bool { return callUpper("a") == "X" })
	report("time.Now", registry.Set(time.Now, func() time.Time { return time.Unix(42, 0) }), func() bool { return time.Now().Unix() == 42 })
	report("flat.AddOne", registry.Set(flat.AddOne, func(x int) int { return -x }), func() bool { return flat.CallAddOne(2) == -1 })
	report("tripleNI", registry.Set(tripleNI, func(x int) int { return -x }), func() bool { return callTripleNI(2) == -1 })
	report("addOneNI", registry.Set(addOneNI, func(x int) int { return -x }), func() bool { return callAddOneNI(2) == -1 })
	report("sumNI", registry.Set(sumNI, func(xs ...int) int { return -1 }), func() bool { return callSumNI(2) == -1 })
	report("getNI", registry.Set((*box).getNI, func(*box) int { return -1 }), func() bool { return callGetNI(&box{v: 2}) == -1 })
	report("setNI", registry.Set((*box).setNI, func(b *box, v int) { b.v = -v }), func() bool { return callSetNI(&box{}, 2) == -2 })
}

// report prints one line: "name inlined: <message>", "name patched", "name
// MISSED" (Set succeeded, the caller still runs the old body) or "name
// error: <message>".
func report(name string, err error, reached func() bool) {
	switch {
	case errors.Is(err, registry.ErrInlined):
		fmt.Printf("%s inlined: %v\n", name, err)
	case err != nil:
		fmt.Printf("%s error: %v\n", name, err)
	case reached():
		fmt.Printf("%s patched\n", name)
	default:
		fmt.Printf("%s MISSED\n", name)
	}
}

// Sink keeps the shapes' results live.
var Sink []any

// shapes calls lib's shapes directly, where the compiler may inline them,
// and keeps each reachable as a func value too, so that Set can name it.
// It runs only for the oracle test's scan (the binary is never run then).
//
//go:noinline
func shapes(n int) {
	c := &lib.Counter{}
	c.Add(n)
	k := lib.NewCounter()
	Sink = append(Sink, lib.Zero(), lib.Inc(n), lib.Same("s"), lib.IsNeg(n), lib.Half(float64(n)),
		lib.Quote("q"), lib.Upper("u"), lib.Maybe(n), lib.Wrapped(n), lib.Indirect(n),
		lib.Map([]int{n}, lib.Inc), c.Get(), c.Double(), k.Bump(), lib.Adder(n)(n), lib.Run([]int{n}),
		lib.Mix(n, n, n, n), lib.Peek(k))
	lib.Empty()
	lib.Reset(c)
	Sink = append(Sink, lib.Zero, lib.Inc, lib.Same, lib.Empty, lib.IsNeg, lib.Half, lib.Quote, lib.Upper,
		lib.Maybe, lib.Wrapped, lib.Indirect, lib.Map[int], (*lib.Counter).Add, (*lib.Counter).Get,
		lib.Counter.Double, lib.NewCounter, lib.Adder, lib.Run, lib.Mix, lib.Reset, lib.Peek)
}
