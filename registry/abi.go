package registry

import "reflect"

// Integer and floating-point argument registers of Go's ABIInternal on
// amd64: RAX RBX RCX RDI RSI R8-R11, and X0-X14.
const (
	abiIntRegs   = 9
	abiFloatRegs = 15
	ptrSize      = 8
)

// abiFrame lays out a call of a function of type ft under ABIInternal on
// amd64 (Go's internal ABI document, "Function call argument and result
// passing") and returns what the caller's outgoing area holds: stack, the
// bytes of stack-assigned arguments and results, pointer-aligned, and
// spill, the register arguments' spill area the callee may write after
// them.
func abiFrame(ft reflect.Type) (stack, spill uintptr) {
	var regArgs []reflect.Type
	// place assigns one value: to registers when it fits in those left,
	// else to the stack. The compiler stack-assigns zero-sized values.
	var ints, floats int
	place := func(t reflect.Type) bool {
		ni, nf := ints, floats
		if t.Size() > 0 && regAssign(t, &ni, &nf) && ni <= abiIntRegs && nf <= abiFloatRegs {
			ints, floats = ni, nf
			return true
		}
		stack = align(stack, uintptr(t.Align())) + t.Size()
		return false
	}
	for i := range ft.NumIn() {
		if t := ft.In(i); place(t) {
			regArgs = append(regArgs, t)
		}
	}
	stack = align(stack, ptrSize)
	ints, floats = 0, 0
	for i := range ft.NumOut() {
		place(ft.Out(i))
	}
	stack = align(stack, ptrSize)
	end := stack
	for _, t := range regArgs {
		end = align(end, uintptr(t.Align())) + t.Size()
	}
	return stack, align(end, ptrSize) - stack
}

// regAssign counts the registers a value of type t takes, adding to ints
// and floats; false when it cannot go in registers at all (an array of
// more than one element).
func regAssign(t reflect.Type, ints, floats *int) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Pointer, reflect.UnsafePointer, reflect.Chan, reflect.Map, reflect.Func:
		*ints++
	case reflect.Float32, reflect.Float64:
		*floats++
	case reflect.Complex64, reflect.Complex128:
		*floats += 2
	case reflect.String, reflect.Interface:
		*ints += 2
	case reflect.Slice:
		*ints += 3
	case reflect.Struct:
		for i := range t.NumField() {
			if !regAssign(t.Field(i).Type, ints, floats) {
				return false
			}
		}
	case reflect.Array:
		switch t.Len() {
		case 0:
		case 1:
			return regAssign(t.Elem(), ints, floats)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

func align(x, a uintptr) uintptr { return (x + a - 1) &^ (a - 1) }

// argsSize is the argument frame the compiler records in a function's
// _func.args for a function of type t: the stack-assigned arguments and
// results, then the spill slots of the register-assigned arguments.
func argsSize(t reflect.Type) int {
	stack, spill := abiFrame(t)
	return int(stack + spill)
}
