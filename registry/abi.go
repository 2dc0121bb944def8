package registry

import "reflect"

// Register counts of Go's internal ABI on amd64 (cmd/compile/abi-internal.md).
const (
	intArgRegs   = 9  // RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11
	floatArgRegs = 15 // X0-X14
	ptrSize      = 8
)

// argsSize is the size of the argument frame the compiler records in a
// function's _func.args for a function of type t: the stack-assigned
// arguments, pointer alignment, the stack-assigned results, pointer
// alignment, and the spill slots of the register-assigned arguments,
// pointer-aligned, assigned by the algorithm of Go's internal ABI.
func argsSize(t reflect.Type) int {
	var in abiSeq
	spill := 0
	for i := range t.NumIn() {
		a := t.In(i)
		if in.add(a) && a.Size() > 0 {
			spill = alignUp(spill, a.Align()) + int(a.Size())
		}
	}
	out := abiSeq{stack: alignUp(in.stack, ptrSize)}
	for i := range t.NumOut() {
		out.add(t.Out(i))
	}
	return alignUp(out.stack, ptrSize) + alignUp(spill, ptrSize)
}

// abiSeq is the state of the ABI's assignment: registers used and stack
// bytes.
type abiSeq struct{ ints, floats, stack int }

// add assigns one argument or result, reporting whether it went to
// registers. A zero-sized value is stack-assigned: it takes no bytes but
// aligns what follows.
func (a *abiSeq) add(t reflect.Type) bool {
	if t.Size() == 0 {
		a.stack = alignUp(a.stack, t.Align())
		return false
	}
	saved := *a
	if a.reg(t) && a.ints <= intArgRegs && a.floats <= floatArgRegs {
		return true
	}
	*a = saved
	a.stack = alignUp(a.stack, t.Align()) + int(t.Size())
	return false
}

// reg register-assigns a value of type t; the caller checks the counts.
func (a *abiSeq) reg(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		a.floats++
	case reflect.Complex64, reflect.Complex128:
		a.floats += 2
	case reflect.String, reflect.Interface:
		a.ints += 2
	case reflect.Slice:
		a.ints += 3
	case reflect.Array:
		switch t.Len() {
		case 0:
		case 1:
			return a.reg(t.Elem())
		default:
			return false
		}
	case reflect.Struct:
		for i := range t.NumField() {
			if !a.reg(t.Field(i).Type) {
				return false
			}
		}
	default: // integers, bool, pointers, maps, channels, funcs
		a.ints++
	}
	return a.ints <= intArgRegs && a.floats <= floatArgRegs
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }
