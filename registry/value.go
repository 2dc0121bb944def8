package registry

import (
	"fmt"
	"reflect"

	"github.com/switchboard-go/switchboard/unwind"
)

// SetValue is SetWith for code that holds its functions as reflect
// Values, such as mocking libraries built on reflect.MakeFunc: fn and impl
// must be func Values of the same type (impl may be a MakeFunc value).
// Invalid Values, other kinds, nil funcs and different types are refused
// with an *Error, and nothing changes.
func SetValue(fn, impl reflect.Value, opts ...Option) error {
	if err := checkValue("Set", "fn", fn); err != nil {
		return err
	}
	if err := checkValue("Set", "impl", impl); err != nil {
		return err
	}
	if fn.Type() != impl.Type() {
		return &Error{Op: "Set", Func: valueName(fn), Err: because(ErrTypeMismatch, "fn is %v, impl is %v", fn.Type(), impl.Type())}
	}
	return SetWith(iface(fn), iface(impl), opts...)
}

// ResetValue is Reset for a func Value.
func ResetValue(fn reflect.Value) error {
	if err := checkValue("Reset", "fn", fn); err != nil {
		return err
	}
	return Reset(iface(fn))
}

// OriginalValue is Original for a func Value: it returns a Value of fn's
// type that runs fn's original body, whether fn is redirected or not.
// Original[any] cannot express that type; this can.
func OriginalValue(fn reflect.Value) (reflect.Value, error) {
	if err := checkValue("Original", "fn", fn); err != nil {
		return reflect.Value{}, err
	}
	fv, err := original(iface(fn))
	if err != nil {
		return reflect.Value{}, err
	}
	return funcValue(fn.Type(), fv), nil
}

// checkValue refuses what is not a non-nil func Value.
func checkValue(op, what string, v reflect.Value) error {
	switch {
	case !v.IsValid():
		return &Error{Op: op, Func: "<invalid>", Err: because(ErrNil, "%s is the zero reflect.Value", what)}
	case v.Kind() != reflect.Func:
		return &Error{Op: op, Func: fmt.Sprintf("<%v>", v.Type()), Err: because(ErrNotFunc, "%s is a %v", what, v.Type())}
	case !v.CanInterface() && !v.CanAddr():
		return &Error{Op: op, Func: fmt.Sprintf("<%v>", v.Type()), Err: because(ErrNotFunc, "%s was read from an unexported field and is not addressable", what)}
	case v.IsNil():
		return &Error{Op: op, Func: fmt.Sprintf("<nil %v>", v.Type()), Err: because(ErrNil, "%s is a nil %v", what, v.Type())}
	}
	return nil
}

func valueName(fn reflect.Value) string { return unwind.Name(fn.Pointer()) }

// iface returns a func Value as an interface holding its funcval, also for
// a Value read from an unexported field, which Interface refuses.
func iface(v reflect.Value) any {
	if v.CanInterface() || !v.CanAddr() {
		return v.Interface()
	}
	return reflect.NewAt(v.Type(), v.Addr().UnsafePointer()).Elem().Interface()
}
