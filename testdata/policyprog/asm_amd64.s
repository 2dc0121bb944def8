#include "textflag.h"

// func asmAdd(a, b int) int
// In: a+0(FP), b+8(FP). Out: ret+16(FP). Clobbers AX. ABI0, as every Go
// assembly function: the fixture's one assembly body.
TEXT ·asmAdd(SB), NOSPLIT, $0-24
	MOVQ a+0(FP), AX
	ADDQ b+8(FP), AX
	MOVQ AX, ret+16(FP)
	RET
