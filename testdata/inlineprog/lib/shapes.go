package lib

import (
	"strconv"
	"strings"
)

// The shapes below give the inlining oracle test (cmd/switchboard's
// TestScanAcceptsNothingTheCompilerInlined) functions of every kind the
// policy tells apart, called from package main in the ways that inline
// them or not.

// Leaf functions: inlined copies may leave no instruction.

func Zero() int              { return 0 }
func Inc(x int) int          { return x + 1 }
func Same(s string) string   { return s }
func Empty()                 {}
func IsNeg(x int) bool       { return x < 0 }
func Half(x float64) float64 { return x / 2 }

// Calling out on every path.

func Quote(s string) string { return strconv.Quote(s) }
func Upper(s string) string { return strings.ToUpper(s) + "!" }

// Calling out on some paths only.

func Maybe(x int) string {
	if x < 0 {
		return ""
	}
	return strconv.Itoa(x)
}

// Unexported helpers reached through exported inlinable bodies.

func Wrapped(x int) int { return helper(x) * 2 }

func helper(x int) int { return x + 7 }

func Indirect(x int) int { return unexportedLeaf(x) }

func unexportedLeaf(x int) int { return x ^ 5 }

// Generic code calling an unexported helper: each package using Map
// compiles its own copy.

func Map[T any](xs []T, f func(T) T) []T {
	for i := range xs {
		xs[i] = f(xs[i])
	}
	return xs[:genericHelper(len(xs))]
}

func genericHelper(n int) int { return n }

// Methods, on exported and unexported types.

type Counter struct{ n int }

func (c *Counter) Add(k int)  { c.n += k }
func (c *Counter) Get() int   { return c.n }
func (c Counter) Double() int { return c.n * 2 }
func (c *Counter) reset()     { c.n = 0 }

type counter struct{ n int }

func (c *counter) Bump() int { c.n++; return c.n }
func (c *counter) peek() int { return c.n }

func NewCounter() interface{ Bump() int } { return &counter{} }

// Closures.

func Adder(k int) func(int) int { return func(x int) int { return x + k } }

func Run(xs []int) int {
	sum := 0
	each := func(x int) { sum += x }
	for _, x := range xs {
		each(x)
	}
	return sum
}

// Too big to inline, no calls.

func Mix(a, b, c, d int) int {
	for i := 0; i < a; i++ {
		b ^= c<<3 | d>>5
		c += b*31 + a
		d -= c ^ (b << 7)
		if b > c {
			b, c = c, b
		}
		if d < 0 {
			d = -d + a*b
		}
		a ^= d & 0xff
		b += a % 7
		c -= b / 3
	}
	return a + b + c + d
}

// Reset is unexported-method access for main.
func Reset(c *Counter) { c.reset() }

// Peek keeps counter.peek reachable.
func Peek(c interface{ Bump() int }) int {
	if p, ok := c.(*counter); ok {
		return p.peek()
	}
	return -1
}
