package registry

import (
	"debug/elf"
	"reflect"
	"strings"

	"github.com/switchboard-go/switchboard/unwind"
)

// Check is Set's verdict on the Go function entered at entry in im, as far
// as the image decides it: nil when Set would accept a func value of that
// code with an impl of its type, else the *Error (Op "Check") wrapping the
// sentinel Set would return (an assembly function's body, which no func
// value leads to, is refused with ErrWrapper like its ABI wrapper; a nil
// im with ErrNil). im may be the running program's image
// (unwind.Self, unwind.ImageAt) or a binary read from its file
// (unwind.OpenAt): the rules read only the image's tables, so `switchboard
// scan` applies registry's policy to binaries it does not run.
//
// Set runs the same functions (targetOf, then checkCode); Check leaves out
// only what needs fn's Go type, which an image does not record: for a
// generic instantiation, which register its dictionary arrives in behind
// a method's receiver, and whether its arguments still fit in registers
// with the dictionary in front (ErrGeneric). The planner's verdict
// (ErrUnpatchable, ErrNoRelay) is not part of it either: it depends on
// where relay pages can be mapped, which the scan plans on paper.
func Check(im *unwind.Image, entry uintptr) error {
	fail := func(name string, err error) error {
		return &Error{Op: "Check", Func: name, Entry: entry, Err: err}
	}
	if im == nil {
		return fail("<nil image>", because(ErrNil, "no image to check %#x in", entry))
	}
	f, ok := im.Lookup(entry)
	if !ok || f.Entry != entry {
		return fail(f.Name, because(ErrNotEntry, "%#x is not a function entry", entry))
	}
	// Set names code the runtime's way, which elides type arguments.
	tg, err := targetOf(im, printName(f.Name), entry, im.Bytes)
	if err != nil {
		return fail(f.Name, err)
	}
	rule := kind
	switch {
	case tg.closure:
		rule = allowClosure
	case tg.inst != nil:
		rule = allowGeneric
		if f, ok = im.Lookup(tg.inst.shape); !ok || f.Entry != tg.inst.shape {
			return fail(tg.inst.name, because(ErrNotEntry, "the shape function %#x is not a function entry", tg.inst.shape))
		}
	}
	if err := checkCode(im, f, f.Name, rule, nil); err != nil {
		return fail(f.Name, err)
	}
	return nil
}

// CheckC is SetC's verdict on the C function whose ELF symbol is sym, in
// the object file at path, before planning: nil, or the *Error (Op
// "CheckC") wrapping the sentinel SetC would return (ErrProtected,
// ErrInlined). lookupC runs the same rules (cCode).
func CheckC(path, sym string) error {
	fail := func(err error) error { return &Error{Op: "CheckC", Func: unwind.Demangle(sym), Err: err} }
	f, err := elf.Open(path)
	if err != nil {
		return fail(because(ErrNotEntry, "%v", err))
	}
	defer f.Close()
	if !definesFunc(f, sym) {
		return fail(because(ErrNotEntry, "%s defines no function %s", path, sym))
	}
	if err := cCode(path, sym); err != nil {
		return fail(err)
	}
	return nil
}

// definesFunc reports whether the ELF file defines the function symbol
// sym (in its symbol table or its dynamic one).
func definesFunc(f *elf.File, sym string) bool {
	for _, read := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := read()
		for _, s := range syms {
			if s.Name == sym && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
				return true
			}
		}
	}
	return false
}

// target is how Set treats the Go code a func value leads to.
type target struct {
	// closure: a function literal's body, patched for one instance, or
	// globally when the literal captures nothing.
	closure bool
	// inst: a generic instantiation's wrapper; Set patches its shape
	// function for calls with the instantiation's dictionary.
	inst *instantiation
}

// targetOf decides how Set treats the Go code at entry in im, which the
// runtime names name. code reads a function's bytes: live memory for Set,
// the file for Check. Anything else is plain code, which kind judges.
func targetOf(im *unwind.Image, name string, entry uintptr, code func(unwind.Func) ([]byte, error)) (target, error) {
	switch {
	case isClosure(name, im):
		return target{closure: true}, nil
	case strings.Contains(name, "[") && !strings.HasSuffix(name, "-fm"):
		f, ok := im.Lookup(entry)
		if !ok || f.Entry != entry || !isInstantiation(f.Name) {
			break // a shape function, or not an entry: kind refuses
		}
		b, err := code(f)
		if err != nil {
			return target{}, because(ErrGeneric, "cannot read the wrapper: %v", err)
		}
		inst, err := decodeWrapper(f.Name, entry, b[:min(f.Size, len(b))], func(pc uintptr) (string, bool) {
			g, ok := im.Lookup(pc)
			return g.Name, ok && g.Entry == pc
		})
		if err != nil {
			return target{}, err
		}
		return target{inst: &inst}, nil
	}
	return target{}, nil
}

// checkCode is registry's policy on the Go function f of im, named name:
// rule (kind, or kind with closures or generic shapes let through), then
// where its code comes from (ErrProtected), compiler-generated wrappers
// (ErrWrapper; t, fn's type when known, only improves the advice), and
// inlining (ErrInlined). Set (recordAt) and Check both run it.
func checkCode(im *unwind.Image, f unwind.Func, name string, rule func(name string, bin names) error, t reflect.Type) error {
	if err := rule(name, im); err != nil {
		return err
	}
	if !f.Go {
		return because(ErrProtected, "it is not Go code; C functions take SetC")
	}
	if why := protected(im, name, f.Entry); why != "" {
		return because(ErrProtected, "%s", why)
	}
	if im.Autogenerated(f.Entry) {
		return because(ErrWrapper, "%s", wrapperAdvice(im, name, f.Entry, t))
	}
	if file, _ := im.File(f.Entry); strings.HasSuffix(file, ".s") {
		// Its ABI wrapper, which func values lead to, is refused above.
		return because(ErrWrapper, "an assembly function uses the stack-based ABI0: Go reaches it only through its ABI wrapper, and its body is no func value's code")
	}
	return notInlined(im, f, name)
}

// cCode is registry's policy on the C function sym of the object at path:
// the C start-up code and the runtime's cgo glue (ErrProtected), and
// functions the compiler inlined or cloned into callers (ErrInlined).
func cCode(path, sym string) error {
	if unwind.CRuntime(sym) {
		return because(ErrProtected, "%s is C start-up code or the Go runtime's cgo glue", sym)
	}
	copies, _, err := unwind.CInlined(path, sym)
	if err != nil {
		return because(ErrInlined, "cannot tell whether it was inlined: %v", err)
	}
	if len(copies) > 0 {
		return because(ErrInlined, "into %s (inlined copies or gcc clones)", strings.Join(copies, ", "))
	}
	return nil
}

// printName is the runtime's name for a function the table names name:
// type arguments elided, as runtime.Func.Name does.
func printName(name string) string {
	if i, j := strings.IndexByte(name, '['), strings.LastIndexByte(name, ']'); i >= 0 && j > i {
		return name[:i] + "[...]" + name[j+1:]
	}
	return name
}
