package registry

import (
	"reflect"
	"strings"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard/unwind"
)

// A generic function's func value names a wrapper, pkg.F[int], that loads
// the instantiation's dictionary (pkg..dict.F[int]) into a register and
// calls the shape function pkg.F[go.shape.int], which every instantiation
// of the same shape shares. Direct calls skip the wrapper: they call the
// shape function with the dictionary in RAX. So one instantiation is the
// shape function's calls with RAX == &dictionary.

// instantiation is a generic wrapper decoded.
type instantiation struct {
	name  string  // the wrapper's, pkg.F[int]
	shape uintptr // entry of the shape function
	dict  uintptr // the dictionary's address
	reg   x86asm.Reg
}

// isInstantiation reports whether name is a generic instantiation's
// wrapper rather than a shape function or plain code.
func isInstantiation(name string) bool {
	return strings.Contains(name, "[") && !strings.Contains(name, "go.shape.")
}

// skeleton is name with the contents of every outermost [...] removed:
// the same for a wrapper and its shape function.
func skeleton(name string) string {
	var b strings.Builder
	depth := 0
	for _, c := range name {
		switch {
		case c == '[':
			if depth == 0 {
				b.WriteRune(c)
			}
			depth++
		case c == ']':
			depth--
			if depth == 0 {
				b.WriteRune(c)
			}
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// decodeWrapper finds the call to the shape function in a wrapper's code
// and the dictionary loaded just before it: LEA reg, [RIP+dict]; CALL
// shape. code is the wrapper's code, at address pc. shapeName names the
// function at a call target.
func decodeWrapper(name string, pc uintptr, code []byte, shapeName func(uintptr) (string, bool)) (instantiation, error) {
	want := skeleton(name)
	var prev x86asm.Inst
	prevPC := uintptr(0)
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return instantiation{}, because(ErrGeneric, "cannot decode the wrapper at +%#x: %v", off, err)
		}
		at := pc + uintptr(off)
		off += in.Len
		if in.Op == x86asm.RET || in.Op == x86asm.JMP || in.Op == x86asm.UD1 || in.Op == x86asm.INT {
			break
		}
		if in.Op != x86asm.CALL {
			prev, prevPC = in, at
			continue
		}
		rel, ok := in.Args[0].(x86asm.Rel)
		if !ok {
			break
		}
		target := uintptr(int64(pc) + int64(off) + int64(rel))
		callee, ok := shapeName(target)
		if !ok || !strings.Contains(callee, "go.shape.") || skeleton(callee) != want {
			// The stack check's morestack call, or a call the body made
			// after the shape function was inlined into the wrapper.
			prev, prevPC = in, at
			continue
		}
		m, isMem := prev.Args[1].(x86asm.Mem)
		dst, isReg := prev.Args[0].(x86asm.Reg)
		if prev.Op != x86asm.LEA || !isReg || !isMem || m.Base != x86asm.RIP || m.Index != 0 {
			return instantiation{}, because(ErrGeneric, "the wrapper calls %s without loading a dictionary right before", callee)
		}
		dict := uintptr(int64(prevPC) + int64(prev.Len) + m.Disp)
		return instantiation{name: name, shape: target, dict: dict, reg: dst}, nil
	}
	return instantiation{}, because(ErrInlined, "%s does not call a shape function of its own (its body was inlined into the wrapper); mark it //go:noinline", name)
}

// resolveInstantiation decodes the wrapper name at entry, size bytes long,
// of the running program, naming call targets by their symbols in im (the
// runtime elides type arguments from names).
func resolveInstantiation(name string, entry unsafe.Pointer, size int, im *unwind.Image) (instantiation, error) {
	code := unsafe.Slice((*byte)(entry), size)
	inst, err := decodeWrapper(name, uintptr(entry), code, func(pc uintptr) (string, bool) {
		f, ok := im.Lookup(pc)
		return f.Name, ok && f.Entry == pc
	})
	if err != nil {
		return inst, err
	}
	if inst.reg != x86asm.RAX {
		// Methods of generic types: the receiver comes first, and the
		// dictionary after it. Guards compare RAX and RDX only.
		return inst, because(ErrGeneric, "the dictionary is passed in %v, after the receiver, and guards can only compare RAX and RDX: methods of generic types cannot be patched per instantiation", inst.reg)
	}
	return inst, nil
}

// dictFits reports whether a function of type ft, called as a shape
// function with the dictionary in front of its arguments, still takes
// every argument in registers: then DropDictionary converts such a call to
// one of ft by moving the integer registers down one.
func dictFits(ft reflect.Type) bool {
	ints, floats := 1, 0 // the dictionary
	for i := range ft.NumIn() {
		t := ft.In(i)
		if t.Size() == 0 {
			continue
		}
		if !regAssign(t, &ints, &floats) || ints > abiIntRegs || floats > abiFloatRegs {
			return false
		}
	}
	return true
}
