package registry

import (
	"reflect"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard/dispatch"
)

// A generic function's func value names a wrapper, pkg.F[int], that loads
// the instantiation's dictionary (pkg..dict.F[int]) into a register and
// calls the shape function pkg.F[go.shape.int], which every instantiation
// of the same shape shares. Direct calls skip the wrapper: they call the
// shape function with the dictionary in RAX. So one instantiation is the
// shape function's calls with RAX == &dictionary. A method's shape
// function takes its receiver first and the dictionary after it: in RBX
// behind a receiver in RAX.

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
// and the dictionary it passes: a register loaded by LEA reg, [RIP+dict]
// and not written again before the CALL (a race build puts a call of
// racefuncenter and argument reloads between them). code is the wrapper's
// code, at address pc; shapeName names the function at a call target.
func decodeWrapper(name string, pc uintptr, code []byte, shapeName func(uintptr) (string, bool)) (instantiation, error) {
	want := skeleton(name)
	loaded := map[x86asm.Reg]uintptr{} // register -> address LEA'd into it
	for off := 0; off < len(code); {
		in, err := dispatch.Decode(code[off:])
		if err != nil {
			return instantiation{}, because(ErrGeneric, "cannot decode the wrapper at +%#x: %v", off, err)
		}
		off += in.Len
		next := pc + uintptr(off)
		switch in.Op {
		case x86asm.RET, x86asm.JMP, x86asm.UD1, x86asm.INT:
			off = len(code)
			continue
		case x86asm.LEA:
			if m, ok := in.Args[1].(x86asm.Mem); ok && m.Base == x86asm.RIP && m.Index == 0 {
				loaded[dispatch.Family(in.Args[0].(x86asm.Reg))] = uintptr(int64(next) + m.Disp)
				continue
			}
		case x86asm.CALL:
			rel, ok := in.Args[0].(x86asm.Rel)
			if !ok {
				clear(loaded)
				continue
			}
			target := uintptr(int64(next) + int64(rel))
			callee, ok := shapeName(target)
			if !ok || !strings.Contains(callee, "go.shape.") || skeleton(callee) != want {
				clear(loaded) // the call clobbers every register
				continue
			}
			if dict, ok := loaded[x86asm.RAX]; ok {
				return instantiation{name: name, shape: target, dict: dict, reg: x86asm.RAX}, nil
			}
			for reg, dict := range loaded {
				return instantiation{name: name, shape: target, dict: dict, reg: reg}, nil
			}
			return instantiation{}, because(ErrGeneric, "the wrapper calls %s without a dictionary in a register", callee)
		}
		written(in, loaded)
	}
	return instantiation{}, because(ErrInlined, "%s does not call a shape function of its own (its body was inlined into the wrapper); mark it //go:noinline", name)
}

// written forgets the registers in may write: its destination (the first
// operand, when a register) and those some instructions write implicitly.
// Conservative: a compare forgets its register too.
func written(in x86asm.Inst, loaded map[x86asm.Reg]uintptr) {
	switch in.Op {
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.CQO, x86asm.CDQ, x86asm.CPUID, x86asm.RDTSC,
		x86asm.CMPXCHG, x86asm.CMPXCHG8B, x86asm.CMPXCHG16B:
		delete(loaded, x86asm.RAX)
		delete(loaded, x86asm.RDX)
	case x86asm.XCHG, x86asm.XADD:
		if r, ok := in.Args[1].(x86asm.Reg); ok {
			delete(loaded, dispatch.Family(r))
		}
	}
	if r, ok := in.Args[0].(x86asm.Reg); ok {
		delete(loaded, dispatch.Family(r))
	}
}

// isMethod reports whether an instantiation's name is a method's,
// pkg.(*T[int]).M or pkg.T[int].M, rather than a function's, pkg.F[int]:
// a function's type arguments end its name.
func isMethod(name string) bool { return !strings.HasSuffix(skeleton(name), "]") }

// dictRegs are the registers a guard can compare with a dictionary, by
// integer argument index: the dispatcher compares RAX and RBX.
var dictRegs = []x86asm.Reg{x86asm.RAX, x86asm.RBX}

// dictIndex returns the integer argument register that carries the
// dictionary of a call of inst's shape function, for an instantiation of
// type ft: the first for a function; for a method the one after its
// receiver's (the receiver is ft's first parameter). The register the
// wrapper loads must be that one, and one that guards compare.
func dictIndex(inst instantiation, ft reflect.Type) (int, error) {
	at := 0
	if isMethod(inst.name) && ft.NumIn() > 0 && ft.In(0).Size() > 0 {
		var floats int
		if !regAssign(ft.In(0), &at, &floats) {
			at = 0 // a receiver passed on the stack: the dictionary comes first
		}
	}
	if at >= len(dictRegs) {
		return 0, because(ErrGeneric, "the dictionary comes in %v, after a receiver of %d integer registers; guards compare a dictionary in RAX or RBX only (functions, and methods whose receiver takes at most one integer register)", inst.reg, at)
	}
	if dictRegs[at] != inst.reg {
		return 0, because(ErrGeneric, "the wrapper passes the dictionary in %v, where the ABI puts it in %v", inst.reg, dictRegs[at])
	}
	return at, nil
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
