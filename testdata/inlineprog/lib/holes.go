package lib

// Shapes a review found accepted while a caller kept an inlined copy
// (TestInliningByBuildKind reports them; the -m oracle test sees them).

// Gen's instantiations are all inlined into package main and dropped by
// the linker, leaving no trace of lib's generic code, yet genHelper is
// inlined into main through them.
func Gen[T any](xs []T) int { return genHelper(len(xs)) }

func genHelper(n int) int { return n + 2 }

// GenHelper hands out genHelper as a func value.
func GenHelper() func(int) int { return genHelper }

// kind is promoted through a struct of package main that embeds Counter:
// main's compiler-generated wrapper inlines it.
func (c *Counter) kind() int { return 7 }

type kinder interface{ kind() int }

// Kind calls kind through the interface, so through main's wrapper.
//
//go:noinline
func Kind(x any) int { return x.(kinder).kind() }

// KindMethod hands out (*Counter).kind as a func value.
func KindMethod() func(*Counter) int { return (*Counter).kind }

// The compiler takes a directive's verb up to a space: here the verb is
// "go:noinline\t//", unknown, and Tabbed is inlined.
//
//go:noinline	// tabbed
func Tabbed(x int) int { return x + 3 }

/*
	A directive inside a block comment is no directive:

//go:noinline
*/
func Blocked(x int) int { return x + 4 }
