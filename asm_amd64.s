// The shared dispatcher and the entry of Original's func values. See doc.go
// for the path of one call and
// docs/design.md section 1 for why it is shaped this way.

#include "go_asm.h"
#include "textflag.h"
#include "funcdata.h"

// SITE_ROUTE is where a site keeps its *Route: right after the site's
// JMP R12 (41 FF E4), which the dispatcher returns to.
#define SITE_ROUTE 3

// ROUTE is the dispatcher's rules 1-3 for the route in R13, shared by the
// two entries. It ends every path with TAKE, which each entry defines, with
// R12 = the code to run and RDX = the closure context to enter with.
// In:       R13 = *Route; 8(SP) = the patched function's return address
//           (0(SP) is the return into the site or prologue).
// Clobbers: R12, R13, RDX (only when a target is taken) and flags.
//
// Rule 1, a morestack restart: a function that Original's stub called grew
// its stack and jumped back to its patched entry, so its return address is
// the stub's. It must run the original, never a target.
// Rules 2 and 3 read one word of the route, never two: Route.fast, the
// global target while there are no guards (the common case: one load and
// one test), else Route.table, an immutable snapshot (see route.go). Two
// words read apart could mix two states, and a call could run the original
// while a patch is in.
// Rule 2, no guards and no target (table nil): the original, RDX kept (a
// closure keeps its context).
// Rule 3, the table: the first guard whose non-zero conditions all hold,
// else the terminator's global target, else its original. A zero RAX or
// RDX condition always holds (CMOV replaces it with the value it is
// compared with), so only a miss branches. The label word is read from g
// only for a guard that has one. With a label offset of 0 the word read is
// g.stack.lo, which no label set's address can equal: label guards never
// match then. Nothing is stored: not even below SP.
#define ROUTE \
	MOVQ	·originalRet(SB), R12; \
	CMPQ	R12, 8(SP); \
	JEQ	original; \
	MOVQ	Route_fast(R13), R12; \
	TESTQ	R12, R12; \
	JEQ	slow; \
	MOVQ	R12, DX; \
	MOVQ	0(DX), R12; \
	TAKE; \
slow: \
	MOVQ	Route_table(R13), R12; \
	TESTQ	R12, R12; \
	JEQ	original; \
	MOVQ	R12, R13; \
	CMPQ	Guard_Target(R13), $0; \
	JEQ	last; \
guard: \
	MOVQ	Guard_RAX(R13), R12; \
	TESTQ	R12, R12; \
	CMOVQEQ	AX, R12; \
	CMPQ	R12, AX; \
	JNE	next; \
	MOVQ	Guard_RDX(R13), R12; \
	TESTQ	R12, R12; \
	CMOVQEQ	DX, R12; \
	CMPQ	R12, DX; \
	JNE	next; \
	CMPQ	Guard_Label(R13), $0; \
	JEQ	take; \
	MOVQ	·labelOffset(SB), R12; \
	MOVQ	(R14)(R12*1), R12; \
	CMPQ	R12, Guard_Label(R13); \
	JNE	next; \
take: \
	MOVQ	Guard_Target(R13), DX; \
	MOVQ	0(DX), R12; \
	TAKE; \
next: \
	ADDQ	$Guard__size, R13; \
	CMPQ	Guard_Target(R13), $0; \
	JNE	guard; \
last: \
	MOVQ	Guard_RAX(R13), R12; \
	TESTQ	R12, R12; \
	JEQ	fallback; \
	MOVQ	R12, DX; \
	MOVQ	0(DX), R12; \
	TAKE; \
fallback: \
	MOVQ	Guard_RDX(R13), R12; \
	TAKE; \
original: \
	MOVQ	Route_original(R13), R12; \
	TAKE

// dispatcher is called by every relay site:
//	[POPQ BP]; CALL dispatcher; JMP R12; <8-byte *Route>
// In:       0(SP) = return address into the site (its JMP R12), followed
//           by the site's *Route; 8(SP) = the patched function's return
//           address.
// Out:      R12 = code to run, RDX = its closure context (the target's
//           funcval, or the caller's RDX for the original), then RET to
//           the site, which jumps to R12.
// Clobbers: R12, R13, RDX and flags only. Every other register, including
//           the argument registers RAX RBX RCX RDI RSI R8-R11, X0-X14, g in
//           R14 and zero in X15, belongs to the patched function's caller.
// No lock, no allocation, no call: the runtime treats a PC here as
// assembly, never preempts it asynchronously, and SIGPROF stops its unwind
// quietly at the site's return address. It writes no memory and moves
// SP not at all.
#define TAKE RET
TEXT ·dispatcher(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	0(SP), R12
	MOVQ	SITE_ROUTE(R12), R13
	ROUTE
#undef TAKE

// callDispatcher is the card-literal call mode: the patched prologue itself
// holds CALL rel32 to a relay stub, MOVQ $route, R13; JMP callDispatcher,
// so 0(SP) is the return address into the patched prologue and 8(SP) its
// caller's return address.
// In:       R13 = *Route; 0(SP), 8(SP) as above.
// Out:      the return slot is overwritten with the code to run and RET
//           jumps there with RDX as for dispatcher; the stack is then
//           exactly as at the patched function's entry.
// Clobbers: R12, R13, RDX and flags, as dispatcher. The RET never matches
//           the return stack buffer, which is why this mode is slower.
#define TAKE MOVQ R12, 0(SP); RET
TEXT ·callDispatcher(SB), NOSPLIT|NOFRAME, $0-0
	ROUTE
#undef TAKE

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

// OUT_MAX is the most bytes of stack arguments, stack results and
// register-argument spill area that originalCall's outgoing area holds.
// Its frame ($488) is OUT_MAX plus one saved word, small enough for a NOSPLIT
// function that then calls a function with a stack check.
#define OUT_MAX 480
// ARGS is the offset from SP, after originalCall's prologue, of its
// caller's outgoing area: the frame, the saved BP, the return address.
#define ARGS (OUT_MAX+8+8+8)

// originalCall is the code of Original's func values:
// funcval{originalCall, trampoline, n}. It calls the trampoline, so that
// the original runs with the stub's return address: if it grows its stack
// and restarts at its patched entry, the dispatcher sees that return
// address at 8(SP) and routes the restart to the original (rule 1). The
// call moves the original's stack-passed arguments one frame down, so the
// stub copies them.
// In:       DX = the funcval; 8(DX) = the trampoline; 16(DX) = n, the bytes
//           of stack-passed arguments and results (a multiple of 8, at most
//           OUT_MAX less the callee's spill area). Register arguments as
//           the original takes them.
// Out:      the original's results, in registers and copied back to the
//           caller's result slots.
// Clobbers: what the original clobbers, plus R12, R13 and DX, which no
//           ABIInternal argument or result uses.
// The frame holds copies of the arguments only while the original runs,
// where the original's own argument maps describe them for the garbage
// collector; the stub itself keeps no pointers (NO_LOCAL_POINTERS), only n.
TEXT ·originalCall(SB), NOSPLIT, $488-0
	NO_LOCAL_POINTERS
	MOVQ	16(DX), R12
	MOVQ	R12, OUT_MAX(SP)
in:
	TESTQ	R12, R12
	JEQ	call
	SUBQ	$8, R12
	MOVQ	ARGS(SP)(R12*1), R13
	MOVQ	R13, 0(SP)(R12*1)
	JMP	in
call:
	MOVQ	8(DX), R12
	CALL	R12
	MOVQ	OUT_MAX(SP), R12
out:
	TESTQ	R12, R12
	JEQ	done
	SUBQ	$8, R12
	MOVQ	0(SP)(R12*1), R13
	MOVQ	R13, ARGS(SP)(R12*1)
	JMP	out
done:
	RET

// func originalCallPC() uintptr
TEXT ·originalCallPC(SB), NOSPLIT, $0-8
	LEAQ	·originalCall(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// nilFault is where a trampoline's nil check jumps when a pointer register
// its copied instructions dereference is nil. It faults at a Go PC, with
// the stack as at the patched function's entry (0(SP) = its return
// address), so the runtime turns the fault into the ordinary
// nil-dereference panic, as the original instruction would have.
// In:       nothing. Never returns.
TEXT ·nilFault(SB), NOSPLIT|NOFRAME, $0-0
	XORL	R12, R12
	MOVQ	0(R12), R12
	RET

// func nilFaultPC() uintptr
TEXT ·nilFaultPC(SB), NOSPLIT, $0-8
	LEAQ	·nilFault(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// captureReturn records its return address in originalRet. init calls it
// through originalCall, to learn the return address rule 1 looks for.
// In:       0(SP) = the return address. Clobbers R12.
TEXT ·captureReturn(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	0(SP), R12
	MOVQ	R12, ·originalRet(SB)
	RET

// func captureReturnPC() uintptr
TEXT ·captureReturnPC(SB), NOSPLIT, $0-8
	LEAQ	·captureReturn(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func gWord(off uintptr) uintptr
// The word at off in the current goroutine's g, for tests and for
// verifying an offset handed to SetLabelOffset.
TEXT ·gWord(SB), NOSPLIT, $0-16
	MOVQ	off+0(FP), AX
	MOVQ	(R14)(AX*1), AX
	MOVQ	AX, ret+8(FP)
	RET
