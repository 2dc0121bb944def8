#include "textflag.h"

// func cas16(addr unsafe.Pointer, oldLo, oldHi, newLo, newHi uint64) bool
TEXT ·cas16(SB), NOSPLIT, $0-41
	MOVQ addr+0(FP), DI
	MOVQ oldLo+8(FP), AX
	MOVQ oldHi+16(FP), DX
	MOVQ newLo+24(FP), BX
	MOVQ newHi+32(FP), CX
	LOCK
	CMPXCHG16B (DI)
	SETEQ ret+40(FP)
	RET

// func hasCX16() bool
TEXT ·hasCX16(SB), NOSPLIT, $0-1
	MOVL $1, AX
	XORL CX, CX
	CPUID
	SHRL $13, CX
	ANDL $1, CX
	MOVB CX, ret+0(FP)
	RET
