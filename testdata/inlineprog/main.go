// Command inlineprog reports, for small functions the compiler inlines
// and for //go:noinline twins of them, whether Set refuses them with
// ErrInlined or patches them so that their callers see the replacement.
// TestInliningByBuildKind builds it with and without DWARF and inlining.
package main

import (
	"errors"
	"fmt"

	"github.com/switchboard-go/switchboard/registry"
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

func main() {
	report("triple", registry.Set(triple, func(x int) int { return -x }), func() bool { return callTriple(2) == -1 })
	report("addOne", registry.Set(addOne, func(x int) int { return -x }), func() bool { return callAddOne(2) == -1 })
	report("sum", registry.Set(sum, func(xs ...int) int { return -1 }), func() bool { return callSum(2) == -1 })
	report("get", registry.Set((*box).get, func(*box) int { return -1 }), func() bool { return callGet(&box{v: 2}) == -1 })
	report("set", registry.Set((*box).set, func(b *box, v int) { b.v = -v }), func() bool { return callSet(&box{}, 2) == -2 })
	report("lib.AddTwo", registry.Set(lib.AddTwo, func(x int) int { return -x }), func() bool { return callAddTwo(2) == -1 })
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
