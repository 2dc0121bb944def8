#include "textflag.h"
#include "shift_amd64.h"

// dropDictionary is the code of the funcvals that send a call of a generic
// shape function to a replacement with the instantiation's own signature:
// funcval{dropDictionary, impl}, where impl is the replacement's funcval.
// Callers of a shape function pass the instantiation's dictionary first, in
// RAX, and the arguments after it; the replacement takes the arguments
// alone. Registry only builds these funcvals for signatures whose arguments
// all fit the remaining eight integer registers (nothing on the stack), so
// moving each integer register down one is the whole conversion; float
// registers, the stack and the results are the same for both.
// In:       RAX = the dictionary; RBX RCX RDI RSI R8-R11 = integer
//           arguments; X0-X14 = float arguments; DX = this funcval.
// Out:      jumps to impl's code with the integer arguments in RAX RBX RCX
//           RDI RSI R8 R9 R10 and DX = impl (its closure context). The
//           replacement returns straight to the shape function's caller.
// Clobbers: R12 (scratch at function entry); AX-R10 as above.
// No frame and no call: asynchronous preemption never stops here.
TEXT ·dropDictionary(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	BX, AX
	SHIFT_AFTER_RBX
	MOVQ	8(DX), DX
	MOVQ	0(DX), R12
	JMP	R12

// dropDictionaryRBX is dropDictionary for a method of a generic type whose
// receiver takes RAX (a pointer, or a one-word value): the shape method
// takes the receiver in RAX, the dictionary in RBX and the arguments after
// them, so the receiver stays and the registers after RBX move down one.
// In:       RAX = the receiver; RBX = the dictionary; RCX RDI RSI R8-R11 =
//           integer arguments; X0-X14 = float arguments; DX = this funcval.
// Out:      jumps to impl's code with the receiver in RAX, the integer
//           arguments in RBX RCX RDI RSI R8 R9 R10 and DX = impl.
// Clobbers: R12; BX-R10 as above.
TEXT ·dropDictionaryRBX(SB), NOSPLIT|NOFRAME, $0-0
	SHIFT_AFTER_RBX
	MOVQ	8(DX), DX
	MOVQ	0(DX), R12
	JMP	R12

// func dropDictionaryPC() uintptr
TEXT ·dropDictionaryPC(SB), NOSPLIT, $0-8
	LEAQ	·dropDictionary(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func dropDictionaryRBXPC() uintptr
TEXT ·dropDictionaryRBXPC(SB), NOSPLIT, $0-8
	LEAQ	·dropDictionaryRBX(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
