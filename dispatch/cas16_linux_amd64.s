#include "textflag.h"

// func cas16(addr unsafe.Pointer, oldLo, oldHi, newLo, newHi uint64) bool
// A wide patch's one store: the two jumps of an eviction that runs past an
// aligned quadword land together or not at all.
// In:       addr, 16-byte aligned; old and new as two quadwords each.
// Out:      ret = whether the octoword held old and now holds new.
// Clobbers: AX, BX, CX, DX, DI and flags (CMPXCHG16B's fixed registers).
TEXT ·cas16(SB), NOSPLIT, $0-41
	MOVQ	addr+0(FP), DI
	MOVQ	oldLo+8(FP), AX
	MOVQ	oldHi+16(FP), DX
	MOVQ	newLo+24(FP), BX
	MOVQ	newHi+32(FP), CX
	LOCK
	CMPXCHG16B	(DI)
	SETEQ	ret+40(FP)
	RET
