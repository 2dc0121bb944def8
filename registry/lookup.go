package registry

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/switchboard-go/switchboard/unwind"
)

// byName holds the func values Lookup made, one per function, for the
// life of the process: Set and Original may keep them, and a func value
// must not move or die while a call through it is on its way.
var byName struct {
	mu  sync.Mutex
	fvs map[string]unsafe.Pointer
}

// Lookup returns a func value of type F that calls the Go function or
// method whose symbol name is name: "pkg.f", "pkg.(*T).m", "pkg.T.m",
// unexported ones included, pkg being the full import path
// ("example.com/a/b.(*T).m"). A method's receiver is F's first argument,
// as in a method expression. The value can be called, and passed as fn to
// Set, Reset, Original and the scoped variants. The program is searched
// first, then the Go plugins loaded so far (whose package copies the
// program does not have: a plugin's main package, packages only it links).
//
// Lookup checks F against what the binary records:
//
//   - With DWARF (go build keeps it; go test strips it): the function's
//     formal parameters, in order: the number of arguments (receiver
//     included) and of results, and each one's size and kind
//     (DW_AT_go_kind), which must equal F's.
//   - Without DWARF: the args field of the function's entry in
//     .gopclntab, the size of its argument frame, must equal the frame
//     Go's internal ABI gives F (stack-assigned arguments and results plus
//     the spill slots of register arguments). This catches a different
//     number or size of arguments, and results that do not fit in
//     registers; it cannot see the types of same-size arguments (int and
//     *T) or results passed in registers.
//
// It refuses, with an *Error: a name no Go function of this binary has
// (ErrNotEntry), or ErrInlined when the compiler inlined every call of it
// and left no copy of its own (without DWARF an inlined body can leave no
// trace at all: an unknown name then wraps both); a type that contradicts the binary (ErrTypeMismatch); a
// non-func F (ErrNotFunc); and code that cannot be called through a plain
// func value: closures and method values (ErrClosure, ErrMethodValue, they
// read a context the value lacks), generic shape instantiations
// (ErrGeneric, they take a dictionary), assembly functions (ErrWrapper,
// they use the stack-based ABI0).
func Lookup[F any](name string) (F, error) {
	var out F
	fv, err := lookupName(name, reflect.TypeFor[F]())
	if err != nil {
		return out, err
	}
	*(*unsafe.Pointer)(unsafe.Pointer(&out)) = fv
	return out, nil
}

// LookupValue is Lookup for a func type known at run time.
func LookupValue(name string, t reflect.Type) (reflect.Value, error) {
	fv, err := lookupName(name, t)
	if err != nil {
		return reflect.Value{}, err
	}
	return funcValue(t, fv), nil
}

// funcValue makes a func Value of type t whose funcval is fv.
func funcValue(t reflect.Type, fv unsafe.Pointer) reflect.Value {
	return reflect.ValueOf(reflect.NewAt(t, unsafe.Pointer(&fv)).Elem().Interface())
}

func lookupName(name string, t reflect.Type) (unsafe.Pointer, error) {
	fail := func(entry uintptr, err error) (unsafe.Pointer, error) {
		return nil, &Error{Op: "Lookup", Func: name, Entry: entry, Err: err}
	}
	if t == nil || t.Kind() != reflect.Func {
		return fail(0, because(ErrNotFunc, "Lookup needs a func type, not %v", t))
	}
	im, err := unwind.Self()
	if err != nil {
		return fail(0, because(ErrNotEntry, "%v", err))
	}
	f, ok := im.ByName(name)
	if !ok {
		// A function of a loaded Go plugin: the program's copy of a
		// package comes first, as above.
		plugins, _ := unwind.Plugins()
		for _, p := range plugins {
			if pf, found := p.ByName(name); found {
				im, f, ok = p, pf, true
				break
			}
		}
	}
	if _, into, err := im.Inlined(name); !ok && err == nil && len(into) > 0 {
		return fail(0, because(ErrInlined, "every call was inlined and no copy of its own remains: into %s; mark it //go:noinline or build with -gcflags=all=-l", strings.Join(into[:min(3, len(into))], ", ")))
	}
	if !ok && im.InlineSource == "DWARF" {
		return fail(0, because(ErrNotEntry, "no Go function of this binary is named %q (the name is the full import path, then f, (*T).m or T.m)", name))
	}
	if !ok {
		// Without DWARF, a function inlined at every call may leave no
		// trace: the name may be wrong, or its calls inlined.
		return fail(0, fmt.Errorf("%w (or %w): no Go function of this binary is named %q (the name is the full import path, then f, (*T).m or T.m); without DWARF, a function the compiler inlined at every call can leave no trace: build with -gcflags=all=-l to tell", ErrNotEntry, ErrInlined, name))
	}
	if err := kind(name, im); err != nil {
		return fail(f.Entry, because(err, "a plain func value cannot call it"))
	}
	if rf := runtime.FuncForPC(f.Entry); rf != nil {
		if file, _ := rf.FileLine(f.Entry); strings.HasSuffix(file, ".s") {
			return fail(f.Entry, because(ErrWrapper, "an assembly function uses the stack-based ABI0; call it through its Go declaration"))
		}
	}
	if err := checkType(im, name, t); err != nil {
		return fail(f.Entry, err)
	}
	byName.mu.Lock()
	defer byName.mu.Unlock()
	if fv, ok := byName.fvs[name]; ok {
		return fv, nil
	}
	if byName.fvs == nil {
		byName.fvs = map[string]unsafe.Pointer{}
	}
	code := new(uintptr)
	*code = f.Entry
	byName.fvs[name] = unsafe.Pointer(code)
	return unsafe.Pointer(code), nil
}

// checkType compares t with the binary's record of the function: its
// DWARF parameters when there are some, else its argument frame size.
func checkType(im *unwind.Image, name string, t reflect.Type) error {
	params, ok, err := im.Params(name)
	if err == nil && ok {
		return checkParams(params, t)
	}
	n, ok := im.ArgsSize(name)
	if !ok || n == unwind.ArgsSizeUnknown {
		return because(ErrTypeMismatch, "the binary records no argument size to check %v against", t)
	}
	if want := argsSize(t); n != want {
		return because(ErrTypeMismatch, "its argument frame is %d bytes, a %v has %d (arguments, stack results and spill slots, per Go's internal ABI)", n, t, want)
	}
	return nil
}

// checkParams compares t with the formal parameters DWARF records.
func checkParams(params []unwind.Param, t reflect.Type) error {
	var in, out []unwind.Param
	for _, p := range params {
		if p.Result {
			out = append(out, p)
		} else {
			in = append(in, p)
		}
	}
	if len(in) != t.NumIn() || len(out) != t.NumOut() {
		return because(ErrTypeMismatch, "it takes %d arguments and returns %d results (DWARF), %v has %d and %d", len(in), len(out), t, t.NumIn(), t.NumOut())
	}
	check := func(what string, i int, p unwind.Param, ft reflect.Type) error {
		if p.Size != int64(ft.Size()) || p.Kind != reflect.Invalid && p.Kind != ft.Kind() {
			return because(ErrTypeMismatch, "%s %d is %s (%d bytes, %v) in DWARF, %v has %v (%d bytes, %v)", what, i, p.Type, p.Size, p.Kind, t, ft, ft.Size(), ft.Kind())
		}
		return nil
	}
	for i, p := range in {
		if err := check("argument", i, p, t.In(i)); err != nil {
			return err
		}
	}
	for i, p := range out {
		if err := check("result", i, p, t.Out(i)); err != nil {
			return err
		}
	}
	return nil
}
