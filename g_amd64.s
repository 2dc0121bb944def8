#include "textflag.h"

// func currentG() unsafe.Pointer
// The running goroutine's g, from thread-local storage (ABI0 code may not
// assume g in R14). Registry reads the profiler-label word of it, at an
// offset it verifies at start-up.
// In:       nothing.
// Out:      ret = g.
// Clobbers: AX.
TEXT ·currentG(SB), NOSPLIT, $0-8
	MOVQ	(TLS), AX
	MOVQ	AX, ret+0(FP)
	RET
