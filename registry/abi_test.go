package registry

import (
	"reflect"
	"runtime"
	"testing"
	"unsafe"

	"github.com/switchboard-go/switchboard/unwind"
)

type (
	abiPair  struct{ a, b int64 }
	abiMixed struct {
		f float32
		b byte
		s string
	}
	abiTrail struct {
		x int32
		_ struct{}
	}
	abiRecv struct{ n int }
)

//go:noinline
func abiNone() {}

//go:noinline
func abiInts(a, b int, c int8) int { return a + b + int(c) }

//go:noinline
func abiTen(a, b, c, d, e, f, g, h, i, j int) int { return a + j }

//go:noinline
func abiStrings(s string, bs []byte, e any) (string, error) { return s, nil }

//go:noinline
func abiFloats(a float64, b float32, c complex128) (float64, complex64) { return a, 0 }

//go:noinline
func abiArray(a [2]int, b [1]string, c [0]int) [3]byte { return [3]byte{} }

//go:noinline
func abiStructs(p abiPair, m abiMixed, t abiTrail) abiPair { return p }

//go:noinline
func abiZero(z struct{}, x int8, w [0]int64, y int32) (struct{}, int8) { return z, x }

//go:noinline
func abiManyResults() (a, b, c, d, e, f, g, h, i, j int) { return }

//go:noinline
func abiMany(a, b, c, d, e string, f int) (x, y, z, w, v string) { return }

//go:noinline
func abiFloatMany(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p float64, q int8) float64 {
	return a + p
}

//go:noinline
func abiVariadic(s string, xs ...int) int { return len(xs) }

//go:noinline
func abiPointers(p *int, m map[int]int, c chan int, f func(), u unsafe.Pointer) uintptr {
	return 0
}

//go:noinline
func (r *abiRecv) ptrMethod(x int) int { return r.n + x }

//go:noinline
func (r abiRecv) valMethod(s string) string { return s }

// TestArgsSizeMatchesCompiler checks argsSize, the ABI's frame size of a
// func type, against the independent oracle: the args field the compiler
// recorded for each function in .gopclntab.
func TestArgsSizeMatchesCompiler(t *testing.T) {
	im, err := unwind.Self()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []any{
		abiNone, abiInts, abiTen, abiStrings, abiFloats, abiArray, abiStructs, abiZero,
		abiManyResults, abiMany, abiFloatMany, abiVariadic, abiPointers,
		(*abiRecv).ptrMethod, abiRecv.valMethod,
	} {
		name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
		got, ok := im.ArgsSize(name)
		if !ok {
			t.Errorf("%s: not in the function table", name)
			continue
		}
		if want := argsSize(reflect.TypeOf(f)); got != want {
			t.Errorf("%s %v: compiler recorded args %d, argsSize computed %d", name, reflect.TypeOf(f), got, want)
		}
	}
}
