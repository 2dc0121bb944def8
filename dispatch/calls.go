package dispatch

import "golang.org/x/arch/x86/x86asm"

// Steps decodes code, which starts at pc, linearly and returns the address
// of each instruction and the target of each direct call or jump. It stops
// at the first byte it cannot decode. Registry uses it to name the method
// a compiler-generated wrapper calls, or inlined.
func Steps(code []byte, pc uintptr) (insts, targets []uintptr) {
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil || in.Len == 0 || in.Op == 0 {
			break
		}
		insts = append(insts, pc+uintptr(off))
		if in.Op == x86asm.CALL || in.Op == x86asm.JMP {
			if r, ok := in.Args[0].(x86asm.Rel); ok {
				targets = append(targets, pc+uintptr(off+in.Len)+uintptr(int64(r)))
			}
		}
		off += in.Len
	}
	return insts, targets
}
