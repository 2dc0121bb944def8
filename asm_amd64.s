// The shared dispatcher. See doc.go for the path of one call and
// docs/design.md section 1 for why it is shaped this way.

#include "go_asm.h"
#include "textflag.h"

// FIND_ROUTE looks up the key in R12 in the table state in RDX and leaves
// the key's *Route in R13. It falls through on a hit at the home slot, the
// common case, so that a dispatched call takes no extra branch; collisions
// continue at miss, emitted out of line by FIND_ROUTE_MISS.
// Reads R12 (key), RDX (*tableState). Clobbers R13 and flags.
#define FIND_ROUTE \
	MOVQ	$0x9E3779B97F4A7C15, R13; \
	IMULQ	R12, R13; \
	SHRQ	$32, R13; \
	ANDQ	tableState_mask(DX), R13; \
	SHLQ	$4, R13; \
	ADDQ	tableState_slots(DX), R13; \
probe: \
	CMPQ	R12, 0(R13); \
	JNE	miss; \
found: \
	MOVQ	8(R13), R13

// FIND_ROUTE_MISS is the collision path of FIND_ROUTE: linear probing with
// wrap-around, ending at an empty slot (an unknown key) in lost.
#define FIND_ROUTE_MISS \
miss: \
	CMPQ	0(R13), $0; \
	JEQ	lost; \
	ADDQ	$16, R13; \
	CMPQ	R13, tableState_end(DX); \
	JCS	probe; \
	MOVQ	tableState_slots(DX), R13; \
	JMP	probe

// dispatcher is called by every relay site: CALL dispatcher; JMP R12.
// In:       0(SP) = return address into the site, the key.
// Out:      R12 = code of the route's target, RDX = its funcval (closure
//           context), then RET to the site, which jumps to R12.
// Clobbers: R12, R13, RDX and flags only. Every other register, including
//           the argument registers RAX RBX RCX RDI RSI R8-R11, X0-X14, g in
//           R14 and zero in X15, belongs to the patched function's caller.
// No lock, no allocation, no call and no stack frame: the runtime treats a
// PC here as assembly, never preempts it asynchronously, and SIGPROF stops
// its unwind quietly at the site's return address.
TEXT ·dispatcher(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	0(SP), R12
	MOVQ	·Routes(SB), DX
	FIND_ROUTE
	MOVQ	0(R13), DX
	MOVQ	0(DX), R12
	RET
	FIND_ROUTE_MISS
lost:
	LEAQ	·dispatchLost(SB), R12
	XORL	DX, DX
	RET

// callDispatcher is the card-literal call mode: the patched prologue itself
// holds CALL rel32 (through a relay stub), so 0(SP) is entry+5 of the
// patched function and 8(SP) its caller's return address.
// In:       0(SP) = return address into the patched prologue, the key.
// Out:      the return slot is overwritten with the target's code and RET
//           jumps there with RDX = its funcval; the stack is then exactly
//           as at the patched function's entry.
// Clobbers: R12, R13, RDX and flags, as dispatcher. The RET never matches
//           the return stack buffer, which is why this mode is slower.
TEXT ·callDispatcher(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	0(SP), R12
	MOVQ	·Routes(SB), DX
	FIND_ROUTE
	MOVQ	0(R13), DX
	MOVQ	0(DX), R12
	MOVQ	R12, 0(SP)
	RET
	FIND_ROUTE_MISS
lost:
	LEAQ	·dispatchLost(SB), R12
	MOVQ	R12, 0(SP)
	XORL	DX, DX
	RET

// dispatchLost is where a key missing from the table leads: it reports the
// bug as a Go panic with a stack trace instead of jumping into the void.
// Reached by JMP with the patched function's stack; it never returns there.
TEXT ·dispatchLost(SB), 0, $0-0
	CALL	·lostRoute(SB)
	RET

// func lookup(s *tableState, key uintptr) *Route
// The dispatcher's probe behind a Go ABI0 signature, for tests and
// benchmarks. Reads its arguments from the frame; clobbers R12, R13, RDX.
TEXT ·lookup(SB), NOSPLIT, $0-24
	MOVQ	s+0(FP), DX
	MOVQ	key+8(FP), R12
	FIND_ROUTE
	MOVQ	R13, ret+16(FP)
	RET
	FIND_ROUTE_MISS
lost:
	MOVQ	$0, ret+16(FP)
	RET

// func dispatcherPC() uintptr
// The ABI0 entry of dispatcher: a Go func value would name an ABI wrapper.
TEXT ·dispatcherPC(SB), NOSPLIT, $0-8
	LEAQ	·dispatcher(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func callDispatcherPC() uintptr
TEXT ·callDispatcherPC(SB), NOSPLIT, $0-8
	LEAQ	·callDispatcher(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// originalEntry is the code of every func value registry.Original returns:
// funcval{originalEntry, trampoline}. The trampoline lives in a relay page,
// outside Go code; a funcval pointing there directly would make `go orig()`
// start a goroutine at a PC the garbage collector cannot unwind.
// In:       DX = the funcval (closure context), 8(DX) = the trampoline.
// Out:      jumps to the trampoline with every argument register intact.
// Clobbers: R12 only (scratch at function entry). DX stays the funcval;
//           the original function is never a closure, so it ignores DX.
TEXT ·originalEntry(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	8(DX), R12
	JMP	R12

// func originalEntryPC() uintptr
TEXT ·originalEntryPC(SB), NOSPLIT, $0-8
	LEAQ	·originalEntry(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
