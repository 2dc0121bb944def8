// The dispatcher of C functions (System V ABI). See croute.go.

#include "go_asm.h"
#include "textflag.h"

// cdispatcher is called by the relay site of every patched C function:
//	[POP RBP]; CALL cdispatcher; JMP R11; <8-byte *CRoute>
// In:       0(SP) = return address, the site's JMP R11; the *CRoute is
//           the quadword after it (CSiteRouteOffset).
// Out:      R11 = the route's code, then RET to the site, which jumps to R11.
// Clobbers: R11 only; not even flags. Under System V, RDI RSI RDX RCX R8 R9
//           and XMM0-7 carry arguments, AL the vector-register count of a
//           variadic call, R10 a static chain; RBX RBP R12-R15 are
//           callee-saved. R11 alone is scratch at every call.
// It runs on whatever stack the C caller has (a pthread, g0, a signal
// stack): it uses no stack beyond its return address, calls nothing, and
// assumes nothing about R14 or any Go state. A C target has no closure
// context, so RDX is left alone: it is an argument register.
TEXT ·cdispatcher(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	0(SP), R11
	MOVQ	const_CSiteRouteOffset(R11), R11
	MOVQ	CRoute_code(R11), R11
	RET

// func cdispatcherPC() uintptr
// The ABI0 entry of cdispatcher: a Go func value would name an ABI wrapper.
TEXT ·cdispatcherPC(SB), NOSPLIT, $0-8
	LEAQ	·cdispatcher(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
