package gomonkey

import (
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/switchboard-go/switchboard/internal/layers"
	"github.com/switchboard-go/switchboard/registry"
)

// Patches is a set of patches that Reset undoes together.
type Patches struct {
	mu   sync.Mutex
	undo []func() error // in the order applied
}

// Params are the results of one call of a sequence double.
type Params []interface{}

// OutputCell is one step of a sequence double: Values are returned Times
// times (once when Times < 2); Times -1 returns Values for every call.
type OutputCell struct {
	Values Params
	Times  int
}

// NewPatches returns an empty set of patches.
func NewPatches() *Patches { return &Patches{} }

func ApplyFunc(target, double interface{}) *Patches { return NewPatches().ApplyFunc(target, double) }

func ApplyMethod(target interface{}, methodName string, double interface{}) *Patches {
	return NewPatches().ApplyMethod(target, methodName, double)
}

func ApplyMethodFunc(target interface{}, methodName string, doubleFunc interface{}) *Patches {
	return NewPatches().ApplyMethodFunc(target, methodName, doubleFunc)
}

func ApplyPrivateMethod(target interface{}, methodName string, double interface{}) *Patches {
	return NewPatches().ApplyPrivateMethod(target, methodName, double)
}

func ApplyGlobalVar(target, double interface{}) *Patches {
	return NewPatches().ApplyGlobalVar(target, double)
}

func ApplyFuncVar(target, double interface{}) *Patches {
	return NewPatches().ApplyFuncVar(target, double)
}

func ApplyFuncSeq(target interface{}, outputs []OutputCell) *Patches {
	return NewPatches().ApplyFuncSeq(target, outputs)
}

func ApplyMethodSeq(target interface{}, methodName string, outputs []OutputCell) *Patches {
	return NewPatches().ApplyMethodSeq(target, methodName, outputs)
}

func ApplyFuncVarSeq(target interface{}, outputs []OutputCell) *Patches {
	return NewPatches().ApplyFuncVarSeq(target, outputs)
}

func ApplyFuncReturn(target interface{}, output ...interface{}) *Patches {
	return NewPatches().ApplyFuncReturn(target, output...)
}

func ApplyMethodReturn(target interface{}, methodName string, output ...interface{}) *Patches {
	return NewPatches().ApplyMethodReturn(target, methodName, output...)
}

func ApplyFuncVarReturn(target interface{}, output ...interface{}) *Patches {
	return NewPatches().ApplyFuncVarReturn(target, output...)
}

// ApplyFunc redirects every call of the function target to double, a
// func of a compatible type (see ApplyCore).
func (p *Patches) ApplyFunc(target, double interface{}) *Patches {
	return p.ApplyCore(reflect.ValueOf(target), reflect.ValueOf(double))
}

// ApplyMethod redirects the method methodName of target's type (target
// is a value of the type, or a reflect.Type) to double, whose first
// argument is the receiver.
func (p *Patches) ApplyMethod(target interface{}, methodName string, double interface{}) *Patches {
	t := typeOf(target)
	m := method(t, methodName)
	return p.applyMethod(t, m, reflect.ValueOf(double))
}

// ApplyMethodFunc is ApplyMethod with a double that takes no receiver.
func (p *Patches) ApplyMethodFunc(target interface{}, methodName string, doubleFunc interface{}) *Patches {
	t := typeOf(target)
	m := method(t, methodName)
	return p.applyMethod(t, m, dropReceiver(m.Type, doubleFunc))
}

// ApplyPrivateMethod redirects an unexported method, found by its symbol
// name (pkg.(*T).m for a pointer type, pkg.T.m for a value type), to
// double, whose type must be the method expression's: receiver first.
func (p *Patches) ApplyPrivateMethod(target interface{}, methodName string, double interface{}) *Patches {
	d := reflect.ValueOf(double)
	if d.Kind() != reflect.Func {
		panic("double is not a func")
	}
	t := typeOf(target)
	fn, err := registry.LookupValue(symbolName(t, methodName), d.Type())
	if err != nil {
		panic(fmt.Errorf("retrieve method by name failed: %w", err))
	}
	p.apply(fn, d)
	return p
}

// ApplyGlobalVar sets the variable target points to to double, until
// Reset.
func (p *Patches) ApplyGlobalVar(target, double interface{}) *Patches {
	t := reflect.ValueOf(target)
	if t.Kind() != reflect.Pointer {
		panic("target is not a pointer")
	}
	v := t.Elem()
	old := reflect.New(v.Type()).Elem()
	old.Set(v)
	v.Set(reflect.ValueOf(double))
	p.push(func() error { v.Set(old); return nil })
	return p
}

// ApplyFuncVar sets the func variable target points to to double.
func (p *Patches) ApplyFuncVar(target, double interface{}) *Patches {
	t := reflect.ValueOf(target)
	if t.Kind() != reflect.Pointer {
		panic("target is not a pointer")
	}
	check(t.Elem(), reflect.ValueOf(double))
	return p.ApplyGlobalVar(target, double)
}

// ApplyFuncSeq redirects target to a double returning outputs in turn.
func (p *Patches) ApplyFuncSeq(target interface{}, outputs []OutputCell) *Patches {
	return p.ApplyCore(reflect.ValueOf(target), sequence(reflect.TypeOf(target), outputs))
}

// ApplyMethodSeq redirects a method to a double returning outputs in turn.
func (p *Patches) ApplyMethodSeq(target interface{}, methodName string, outputs []OutputCell) *Patches {
	t := typeOf(target)
	m := method(t, methodName)
	return p.applyMethod(t, m, sequence(m.Type, outputs))
}

// ApplyFuncVarSeq sets a func variable to a double returning outputs in
// turn.
func (p *Patches) ApplyFuncVarSeq(target interface{}, outputs []OutputCell) *Patches {
	ft := funcVar(target)
	return p.ApplyGlobalVar(target, sequence(ft, outputs).Interface())
}

// ApplyFuncReturn redirects target to a double that always returns
// output.
func (p *Patches) ApplyFuncReturn(target interface{}, output ...interface{}) *Patches {
	return p.ApplyCore(reflect.ValueOf(target), sequence(reflect.TypeOf(target), always(output)))
}

// ApplyMethodReturn redirects a method to a double that always returns
// output. Unlike ApplyMethod, target must be a value, not a reflect.Type.
func (p *Patches) ApplyMethodReturn(target interface{}, methodName string, output ...interface{}) *Patches {
	t := reflect.TypeOf(target)
	m := method(t, methodName)
	return p.applyMethod(t, m, sequence(m.Type, always(output)))
}

// ApplyFuncVarReturn sets a func variable to a double that always returns
// output.
func (p *Patches) ApplyFuncVarReturn(target interface{}, output ...interface{}) *Patches {
	ft := funcVar(target)
	return p.ApplyGlobalVar(target, sequence(ft, always(output)).Interface())
}

// ApplyCore redirects the function target to double. double may take
// fewer arguments than target (the first ones) and types target's
// arguments are assignable to; its results must be as many, of types
// target's results are assignable to, as gomonkey allows. It panics with
// the engine's *registry.Error when the engine refuses target.
func (p *Patches) ApplyCore(target, double reflect.Value) *Patches {
	check(target, double)
	p.apply(target, double)
	return p
}

// ApplyCoreOnlyForPrivateMethod is ApplyCore for a target given as a
// pointer to its code address (a func value's data word), of double's
// type.
func (p *Patches) ApplyCoreOnlyForPrivateMethod(target unsafe.Pointer, double reflect.Value) *Patches {
	if double.Kind() != reflect.Func {
		panic("double is not a func")
	}
	fn := reflect.NewAt(double.Type(), unsafe.Pointer(&target)).Elem()
	p.apply(fn, double)
	return p
}

// Origin runs fn with this Patches' functions restored to what they were
// before it patched them, then puts its patches back. The restore is
// process-wide, as in gomonkey; registry.Original calls an original
// without it.
func (p *Patches) Origin(fn func()) {
	resume, err := layers.Suspend(p)
	if err != nil {
		panic(err)
	}
	defer func() {
		if err := resume(); err != nil {
			panic(err)
		}
	}()
	fn()
}

// Reset undoes this Patches' patches, the last applied first: each
// function and variable gets the state it had before. If the engine fails
// to restore a function (registry.ErrUnfinished), Reset still undoes the
// others, then panics with the first error.
func (p *Patches) Reset() {
	p.mu.Lock()
	undo := p.undo
	p.undo = nil
	p.mu.Unlock()
	var first error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		panic(first)
	}
}

func (p *Patches) push(undo func() error) {
	p.mu.Lock()
	p.undo = append(p.undo, undo)
	p.mu.Unlock()
}

// apply patches fn with double, adapted to fn's type.
func (p *Patches) apply(fn, double reflect.Value) {
	l, err := layers.Push(p, layers.Target{Fn: fn}, adapt(fn.Type(), double))
	if err != nil {
		panic(err)
	}
	p.push(l.Pop)
}

// applyMethod patches method m of type t. A value method reached through
// a pointer type is the compiler's wrapper: patch the method with the
// body instead, its receiver passed to double by address.
func (p *Patches) applyMethod(t reflect.Type, m reflect.Method, double reflect.Value) *Patches {
	check(m.Func, double)
	if t.Kind() == reflect.Pointer {
		if vm, ok := t.Elem().MethodByName(m.Name); ok {
			d := adapt(m.Type, double)
			byAddr := reflect.MakeFunc(vm.Type, func(in []reflect.Value) []reflect.Value {
				recv := reflect.New(t.Elem())
				recv.Elem().Set(in[0])
				args := append([]reflect.Value{recv}, in[1:]...)
				if vm.Type.IsVariadic() {
					return d.CallSlice(args)
				}
				return d.Call(args)
			})
			p.apply(vm.Func, byAddr)
			return p
		}
	}
	p.apply(m.Func, double)
	return p
}

// GetResultValues converts results to the results of funcType: nil is
// the zero value.
func GetResultValues(funcType reflect.Type, results ...interface{}) []reflect.Value {
	out := make([]reflect.Value, 0, len(results))
	for i, r := range results {
		v := reflect.New(funcType.Out(i)).Elem()
		if r != nil {
			v.Set(reflect.ValueOf(r))
		}
		out = append(out, v)
	}
	return out
}

func typeOf(target interface{}) reflect.Type {
	if t, ok := target.(reflect.Type); ok {
		return t
	}
	return reflect.TypeOf(target)
}

func method(t reflect.Type, name string) reflect.Method {
	if t == nil {
		panic("retrieve method by name failed")
	}
	m, ok := t.MethodByName(name)
	if !ok {
		panic("retrieve method by name failed")
	}
	return m
}

// symbolName is the symbol of t's method name: pkg.(*T).m or pkg.T.m.
func symbolName(t reflect.Type, name string) string {
	if t == nil {
		panic("retrieve method by name failed")
	}
	if t.Kind() == reflect.Pointer {
		e := t.Elem()
		return e.PkgPath() + ".(*" + e.Name() + ")." + name
	}
	return t.PkgPath() + "." + t.Name() + "." + name
}

func funcVar(target interface{}) reflect.Type {
	t := reflect.TypeOf(target)
	if t == nil || t.Kind() != reflect.Pointer {
		panic("target is not a pointer")
	}
	if t.Elem().Kind() != reflect.Func {
		panic("target is not a func")
	}
	return t.Elem()
}

func always(output []interface{}) []OutputCell { return []OutputCell{{Values: output, Times: -1}} }

// check applies gomonkey's compatibility rule between a target and its
// double.
func check(target, double reflect.Value) {
	if target.Kind() != reflect.Func {
		panic("target is not a func")
	}
	if double.Kind() != reflect.Func {
		panic("double is not a func")
	}
	tt, dt := target.Type(), double.Type()
	differ := func() {
		panic(fmt.Sprintf("target type(%s) and double type(%s) are different", tt, dt))
	}
	if dt.NumIn() > tt.NumIn() || dt.NumOut() != tt.NumOut() ||
		dt.NumIn() == tt.NumIn() && dt.IsVariadic() != tt.IsVariadic() {
		differ()
	}
	for i := range dt.NumIn() {
		if !tt.In(i).AssignableTo(dt.In(i)) {
			differ()
		}
	}
	for i := range dt.NumOut() {
		if !tt.Out(i).AssignableTo(dt.Out(i)) {
			differ()
		}
	}
}

// adapt returns double as a func of type t: itself when the types are
// equal, else a reflect.MakeFunc that passes the first arguments on and
// converts the results back.
func adapt(t reflect.Type, double reflect.Value) reflect.Value {
	if double.Type() == t {
		return double
	}
	dt := double.Type()
	return reflect.MakeFunc(t, func(in []reflect.Value) []reflect.Value {
		var res []reflect.Value
		if dt.IsVariadic() {
			res = double.CallSlice(in[:dt.NumIn()])
		} else {
			res = double.Call(in[:dt.NumIn()])
		}
		out := make([]reflect.Value, len(res))
		for i, r := range res {
			out[i] = reflect.New(t.Out(i)).Elem()
			switch {
			case r.Type().AssignableTo(t.Out(i)):
				out[i].Set(r)
			case r.Kind() == reflect.Interface && r.IsNil():
			case r.Kind() == reflect.Interface && r.Elem().Type().AssignableTo(t.Out(i)):
				out[i].Set(r.Elem())
			default:
				panic(fmt.Sprintf("double returned %v for a result of type %v", r.Type(), t.Out(i)))
			}
		}
		return out
	})
}

// dropReceiver turns a double without receiver into a method's double.
func dropReceiver(mt reflect.Type, doubleFunc interface{}) reflect.Value {
	vf := reflect.ValueOf(doubleFunc)
	if vf.Kind() != reflect.Func {
		panic("doubleFunc is not a func")
	}
	return reflect.MakeFunc(mt, func(in []reflect.Value) []reflect.Value {
		if mt.IsVariadic() {
			return vf.CallSlice(in[1:])
		}
		return vf.Call(in[1:])
	})
}

// sequence makes a double of type ft returning the outputs in turn, then
// panicking; a cell with Times -1 makes it return that cell for ever.
func sequence(ft reflect.Type, outputs []OutputCell) reflect.Value {
	if len(outputs) == 0 || ft.NumOut() != len(outputs[0].Values) {
		n := 0
		if len(outputs) > 0 {
			n = len(outputs[0].Values)
		}
		panic(fmt.Sprintf("func type has %v return values, but only %v values provided as double", ft.NumOut(), n))
	}
	var steps []Params
	forever := false
	for _, c := range outputs {
		if c.Times == -1 {
			steps, forever = []Params{c.Values}, true
			break
		}
		for range max(c.Times, 1) {
			steps = append(steps, c.Values)
		}
	}
	var mu sync.Mutex
	next := 0
	return reflect.MakeFunc(ft, func([]reflect.Value) []reflect.Value {
		mu.Lock()
		i := next
		if !forever {
			next++
		}
		mu.Unlock()
		if i >= len(steps) {
			panic("double seq is less than call seq")
		}
		return GetResultValues(ft, steps[i]...)
	})
}
