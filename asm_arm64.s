// Stubs that let a program importing Switchboard build on arm64. Nothing
// here is ever reached: package registry refuses every patch off
// linux/amd64 with ErrUnsupported, so no relay site, trampoline or func
// value leads to these entries. The address helpers return zero.

#include "textflag.h"

// dispatcher, callDispatcher, originalEntry, dispatchLost: unreachable.
// In: nothing. Out: never returns (BRK traps). Clobbers: nothing.
TEXT ·dispatcher(SB), NOSPLIT|NOFRAME, $0-0
	BRK
	RET

TEXT ·callDispatcher(SB), NOSPLIT|NOFRAME, $0-0
	BRK
	RET

TEXT ·originalEntry(SB), NOSPLIT|NOFRAME, $0-0
	BRK
	RET

TEXT ·dispatchLost(SB), NOSPLIT|NOFRAME, $0-0
	BRK
	RET

// func lookup(s *tableState, key uintptr) *Route
// Out: nil (no dispatcher reads the table here). Clobbers: nothing.
TEXT ·lookup(SB), NOSPLIT, $0-24
	MOVD	ZR, ret+16(FP)
	RET

// func dispatcherPC() uintptr, callDispatcherPC, originalEntryPC
// Out: 0, no dispatcher here. Clobbers: nothing.
TEXT ·dispatcherPC(SB), NOSPLIT, $0-8
	MOVD	ZR, ret+0(FP)
	RET

TEXT ·callDispatcherPC(SB), NOSPLIT, $0-8
	MOVD	ZR, ret+0(FP)
	RET

TEXT ·originalEntryPC(SB), NOSPLIT, $0-8
	MOVD	ZR, ret+0(FP)
	RET
