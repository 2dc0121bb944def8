package registry

import (
	"reflect"
	"testing"
	"unsafe"
)

type pair struct{ a, b int }
type arr2 [2]int32
type mixed struct {
	f float64
	s string
}

// TestABIFrame checks the outgoing-area layout against the rules of Go's
// ABIInternal for amd64, one case per rule.
func TestABIFrame(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fn           any
		stack, spill uintptr
	}{
		{"no arguments", func() {}, 0, 0},
		{"one int", func(int) int { return 0 }, 0, 8},
		{"bytes spill at their size", func(int8, int16, int32) {}, 0, 8},
		{"string and slice", func(string, []byte) {}, 0, 40},
		{"9 ints fill the integer registers", func(a, b, c, d, e, f, g, h, i int) {}, 0, 72},
		{"the 10th int goes to the stack", func(a, b, c, d, e, f, g, h, i, j int) {}, 8, 72},
		{"a string that no longer fits goes whole to the stack", func(a, b, c, d, e, f, g, h int, s string) {}, 16, 64},
		{"12 ints, 10 results", func(a, b, c, d, e, f, g, h, i, j, k, l int) (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10 int) { return }, 32, 72},
		{"floats", func(float64, float32, complex128) {}, 0, 32},
		{"16 floats", func(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p float64) {}, 8, 120},
		{"array of 2 on the stack", func(arr2, int) {}, 8, 8},
		{"array of 1 in a register", func([1]int) {}, 0, 8},
		{"struct of ints", func(pair) {}, 0, 16},
		{"struct of float and string", func(mixed) {}, 0, 24},
		{"stack int32 results align", func(a arr2) (b arr2, c int32) { return }, 16, 0},
		{"zero-sized on the stack", func(struct{}, int) {}, 0, 8},
		{"pointer, map, chan, func, unsafe.Pointer, interface", func(*int, map[int]int, chan int, func(), unsafe.Pointer, any) {}, 0, 56},
	} {
		stack, spill := abiFrame(reflect.TypeOf(tc.fn))
		if stack != tc.stack || spill != tc.spill {
			t.Errorf("%s: stack %d spill %d, want %d %d", tc.name, stack, spill, tc.stack, tc.spill)
		}
	}
}
