package dispatch

import "golang.org/x/arch/x86/x86asm"

// Callee says what a direct call or a jump out of the function does to
// the paths through it (EveryPathCalls).
type Callee int

const (
	// Passes: the call is ordinary code, or not a call that proves
	// anything (a sanitizer hook, the stack check); the path goes on.
	Passes Callee = iota
	// Proves: the call stays a call in any copy of the function.
	Proves
	// NoReturn: the callee never returns (a panic); the path ends.
	NoReturn
)

// EveryPathCalls reports whether every path from code's entry (at pc) to a
// return passes a direct call that classify says Proves, decoding the
// function's whole body. A copy of such a function inlined anywhere keeps
// that call, an instruction the binary attributes to the function, so its
// inlining cannot go unrecorded. Anything it cannot follow (an indirect
// jump, a byte it cannot decode, a path running off the end) is false.
func EveryPathCalls(code []byte, pc uintptr, classify func(target uintptr) Callee) bool {
	seen := make([]bool, len(code))
	work := []int{0}
	for len(work) > 0 {
		off := work[len(work)-1]
		work = work[:len(work)-1]
		for {
			if off < 0 || off >= len(code) {
				return false
			}
			if seen[off] {
				break
			}
			seen[off] = true
			in, err := decode(code[off:])
			if err != nil {
				return false
			}
			next := off + in.Len
			r, rel := in.Args[0].(x86asm.Rel)
			target := next + int(r)
			inside := rel && target >= 0 && target < len(code)
			end := false
			switch in.Op {
			case x86asm.RET, x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.SYSRET:
				return false
			case x86asm.INT, x86asm.UD1, x86asm.UD2, x86asm.HLT:
				end = true
			case x86asm.CALL:
				if rel && !inside {
					switch classify(pc + uintptr(target)) {
					case Proves, NoReturn:
						end = true
					}
				}
			case x86asm.JMP:
				switch {
				case !rel:
					return false // a jump table or a computed jump
				case inside:
					next = target
				case classify(pc+uintptr(target)) == Passes:
					return false
				default:
					end = true // a tail call
				}
			case x86asm.LCALL, x86asm.LJMP, x86asm.SYSCALL, x86asm.SYSENTER:
				return false
			default:
				if isBranch(in.Op) {
					if !inside {
						return false
					}
					work = append(work, target)
				}
			}
			if end {
				break
			}
			off = next
		}
	}
	return true
}

// isBranch reports whether op is a conditional branch.
func isBranch(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JCXZ, x86asm.JE, x86asm.JECXZ,
		x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP,
		x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JRCXZ, x86asm.JS,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.XBEGIN:
		return true
	}
	return false
}
