// The shared dispatcher and the entry of Original's func values. See doc.go
// for the path of one call and
// docs/design.md section 1 for why it is shaped this way.

#include "go_asm.h"
#include "textflag.h"
#include "funcdata.h"
#include "shift_amd64.h"

// SITE_ROUTE is where a site keeps its *Route: right after the site's
// JMP R12 (41 FF E4), which the dispatcher returns to.
#define SITE_ROUTE 3
// SLOT_ROUTE is where a slot's *Route lies from its return address: in the
// slot page's data page (SlotRouteOffset).
#define SLOT_ROUTE const_SlotRouteOffset

// The dispatcher's rules, shared by its two entries (site mode, call mode).
// In:       R13 = *Route; 8(SP) = the patched function's return address
//           (0(SP) is the return into the site or prologue).
// Out:      R12 = the code to run, RDX = the closure context to enter with.
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
// else the terminator's global target, else its original. In site mode
// each entry names the code that checks it (one compare for a guard of
// one condition), which the dispatcher and each check jump to; call mode
// tests every condition of each entry in one loop (CONDS). Nothing is
// stored: not even below SP.

// FAST is rules 1 and 2's fast case; it ends a global target with TAKE and
// jumps to original or, without a fast target, to table.
#define FAST \
	MOVQ	·originalRet(SB), R12; \
	CMPQ	R12, 8(SP); \
	JEQ	original; \
	MOVQ	Route_fast(R13), R12; \
	TESTQ	R12, R12; \
	JEQ	table; \
	MOVQ	R12, DX; \
	MOVQ	0(DX), R12; \
	TAKE

// CONDS falls through when every non-zero condition of the entry at E
// holds and jumps to MISS otherwise; S is scratch. A zero RAX, RBX or RDX
// condition holds (CMOV replaces it with the value it is compared with),
// so only a miss branches. The label word is read from g only for an entry
// that has one. With a label offset of 0 the word read is g.stack.lo,
// which no label set's address can equal: label guards never match then.
#define CONDS(E, S, HIT, MISS) \
	MOVQ	entry_rax(E), S; \
	TESTQ	S, S; \
	CMOVQEQ	AX, S; \
	CMPQ	S, AX; \
	JNE	MISS; \
	MOVQ	entry_rbx(E), S; \
	TESTQ	S, S; \
	CMOVQEQ	BX, S; \
	CMPQ	S, BX; \
	JNE	MISS; \
	MOVQ	entry_rdx(E), S; \
	TESTQ	S, S; \
	CMOVQEQ	DX, S; \
	CMPQ	S, DX; \
	JNE	MISS; \
	CMPQ	entry_label(E), $0; \
	JEQ	HIT; \
	MOVQ	·labelOffset(SB), S; \
	MOVQ	(R14)(S*1), S; \
	CMPQ	S, entry_label(E); \
	JNE	MISS

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
//           R14 and zero in X15, belongs to the patched function's caller;
//           the one exception is a match of a dictionary guard, whose check
//           drops the dictionary from the integer argument registers as
//           the guard's adapter would (H_DROPRBX).
// No lock, no allocation, no call: the runtime treats a PC here (and in
// the checks below) as assembly, never preempts it asynchronously, and
// SIGPROF stops its unwind quietly at the site's return address. It
// writes no memory and moves SP not at all.
#define TAKE RET
// DISPATCH is the whole of a dispatcher whose route lies OFF past its
// return address. One cache line holds every path to the table's indirect
// jump: a fast path split over two lines cost 8% of a direct call (2.16x
// against 2.00x).
#define DISPATCH(OFF) \
	PCALIGN	$64; \
	MOVQ	0(SP), R12; \
	MOVQ	OFF(R12), R13; \
	FAST; \
table: \
	MOVQ	Route_table(R13), R12; \
	TESTQ	R12, R12; \
	JEQ	original; \
	JMP	(R12); \
original: \
	MOVQ	Route_original(R13), R12; \
	RET

TEXT ·dispatcher(SB), NOSPLIT|NOFRAME, $0-0
	DISPATCH(SITE_ROUTE)

// slotDispatcher is dispatcher for the slots of a slot page, which carry
// no route in their code (written before their functions were known):
//	[POPQ BP]; CALL slotDispatcher; JMP R12
// In:       0(SP) = return address into the slot (its JMP R12), whose
//           *Route lies SLOT_ROUTE past it, in the data page; 8(SP) as
//           for dispatcher.
// Out, clobbers and why: as dispatcher, whose rules it applies to the
// route, and whose table checks it jumps into the same way.
TEXT ·slotDispatcher(SB), NOSPLIT|NOFRAME, $0-0
	DISPATCH(SLOT_ROUTE)

// The checks of a table's entries, site mode only, each entered with the
// stack and registers as at the dispatcher's entry except:
// In:       R12 = the entry (entry_check(R12) is this code).
// Out:      on a match, R12 = the target's code and RDX = its funcval, and
//           RET to the site as dispatcher; otherwise what the entry's
//           tail says: jump to the next entry's check with R12 = that
//           entry, or, for the last guard, what the terminator after it
//           says (its global target, or its original with RDX kept).
// Clobbers: R12, R13 (the label and CONDS checks), RDX on a match, flags;
//           on a match of a dictionary guard whose target is an adapter,
//           the argument registers the adapter would move (see H_DROPRBX).
// One check per kind of guard and kind of tail: a guard of one condition
// costs one compare, and the last guard reads the terminator itself, so
// that a call takes one indirect jump whether it matches or not.

// The conditions: each falls through when it holds, else jumps to MISS.
#define C_RAX(MISS) CMPQ AX, entry_rax(R12); JNE MISS
#define C_RBX(MISS) CMPQ BX, entry_rbx(R12); JNE MISS
#define C_RDX(MISS) CMPQ DX, entry_rdx(R12); JNE MISS
// The label word (see CONDS for a label offset of 0).
#define C_LABEL(MISS) \
	MOVQ	·labelOffset(SB), R13; \
	MOVQ	(R14)(R13*1), R13; \
	CMPQ	R13, entry_label(R12); \
	JNE	MISS
#define C_ALL(MISS) CONDS(R12, R13, hit, MISS)

// The tails: where a miss goes.
#define T_NEXT \
	ADDQ	$entry__size, R12; \
	JMP	(R12)
#define T_GLOBAL \
	MOVQ	(entry__size+entry_rax)(R12), DX; \
	MOVQ	0(DX), R12; \
	RET
#define T_ORIGINAL \
	MOVQ	(entry__size+entry_rdx)(R12), R12; \
	RET

// The hits: where a match goes. H_TARGET runs the target. H_DROPRAX and
// H_DROPRBX run a target that is a dictionary adapter (dict_amd64.s) for
// the replacement in its second word: they do the adapter's work, moving
// the integer arguments after the dictionary down one register, and go to
// the replacement straight away, which saves the adapter's jump.
#define H_TARGET \
	MOVQ	entry_target(R12), DX; \
	MOVQ	0(DX), R12; \
	RET
#define H_DROPRAX \
	MOVQ	BX, AX; \
	H_DROPRBX
#define H_DROPRBX \
	SHIFT_AFTER_RBX; \
	MOVQ	entry_target(R12), DX; \
	MOVQ	dictFuncval_impl(DX), DX; \
	MOVQ	0(DX), R12; \
	RET

// CHECK defines the check NAME of condition COND with hit HIT and tail
// TAIL. A match falls through: a matching call takes no branch after the
// dispatcher's indirect jump.
#define CHECK(NAME, COND, HIT, TAIL) \
	TEXT NAME(SB), NOSPLIT|NOFRAME, $0-0; \
	PCALIGN	$64; \
	COND(miss); \
hit: \
	HIT; \
miss: \
	TAIL

CHECK(·dispatcherRAX, C_RAX, H_TARGET, T_NEXT)
CHECK(·dispatcherRAXGlobal, C_RAX, H_TARGET, T_GLOBAL)
CHECK(·dispatcherRAXOriginal, C_RAX, H_TARGET, T_ORIGINAL)
CHECK(·dispatcherRBX, C_RBX, H_TARGET, T_NEXT)
CHECK(·dispatcherRBXGlobal, C_RBX, H_TARGET, T_GLOBAL)
CHECK(·dispatcherRBXOriginal, C_RBX, H_TARGET, T_ORIGINAL)
CHECK(·dispatcherRDX, C_RDX, H_TARGET, T_NEXT)
CHECK(·dispatcherRDXGlobal, C_RDX, H_TARGET, T_GLOBAL)
CHECK(·dispatcherRDXOriginal, C_RDX, H_TARGET, T_ORIGINAL)
CHECK(·dispatcherLabel, C_LABEL, H_TARGET, T_NEXT)
CHECK(·dispatcherLabelGlobal, C_LABEL, H_TARGET, T_GLOBAL)
CHECK(·dispatcherLabelOriginal, C_LABEL, H_TARGET, T_ORIGINAL)
CHECK(·dispatcherAll, C_ALL, H_TARGET, T_NEXT)
CHECK(·dispatcherAllGlobal, C_ALL, H_TARGET, T_GLOBAL)
CHECK(·dispatcherAllOriginal, C_ALL, H_TARGET, T_ORIGINAL)
CHECK(·dispatcherDropRAX, C_RAX, H_DROPRAX, T_NEXT)
CHECK(·dispatcherDropRAXGlobal, C_RAX, H_DROPRAX, T_GLOBAL)
CHECK(·dispatcherDropRAXOriginal, C_RAX, H_DROPRAX, T_ORIGINAL)
CHECK(·dispatcherDropRBX, C_RBX, H_DROPRBX, T_NEXT)
CHECK(·dispatcherDropRBXGlobal, C_RBX, H_DROPRBX, T_GLOBAL)
CHECK(·dispatcherDropRBXOriginal, C_RBX, H_DROPRBX, T_ORIGINAL)

// dispatcherGlobal: a terminator with a global target, reached only when
// a table holds no guard.
TEXT ·dispatcherGlobal(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	entry_rax(R12), DX
	MOVQ	0(DX), R12
	RET

// dispatcherOriginal: a terminator without one; RDX kept.
TEXT ·dispatcherOriginal(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ	entry_rdx(R12), R12
	RET
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
// Scoped patches are site mode, but a call that entered this mode's stub
// before its function moved to site mode may meet a table with guards
// here: it checks them all, in order.
#define TAKE MOVQ R12, 0(SP); RET
TEXT ·callDispatcher(SB), NOSPLIT|NOFRAME, $0-0
	FAST
table:
	MOVQ	Route_table(R13), R12
	TESTQ	R12, R12
	JEQ	original
	MOVQ	R12, R13
guard:
	CMPQ	entry_target(R13), $0
	JEQ	last
	CONDS(R13, R12, take, next)
take:
	MOVQ	entry_target(R13), DX
	MOVQ	0(DX), R12
	TAKE
next:
	ADDQ	$entry__size, R13
	JMP	guard
last:
	MOVQ	entry_rax(R13), R12
	TESTQ	R12, R12
	JEQ	fallback
	MOVQ	R12, DX
	MOVQ	0(DX), R12
	TAKE
fallback:
	MOVQ	entry_rdx(R13), R12
	TAKE
original:
	MOVQ	Route_original(R13), R12
	TAKE
#undef TAKE

// func fillCheckPCs(pcs *[numChecks]uintptr)
// The ABI0 entries of the checks, by kind (see checkOf): one condition
// kind after another, each with tails next, global, original; then the
// two terminators.
TEXT ·fillCheckPCs(SB), NOSPLIT, $0-8
	MOVQ	pcs+0(FP), AX
	LEAQ	·dispatcherRAX(SB), BX
	MOVQ	BX, ((const_checkRAX*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherRAXGlobal(SB), BX
	MOVQ	BX, ((const_checkRAX*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherRAXOriginal(SB), BX
	MOVQ	BX, ((const_checkRAX*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherRBX(SB), BX
	MOVQ	BX, ((const_checkRBX*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherRBXGlobal(SB), BX
	MOVQ	BX, ((const_checkRBX*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherRBXOriginal(SB), BX
	MOVQ	BX, ((const_checkRBX*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherRDX(SB), BX
	MOVQ	BX, ((const_checkRDX*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherRDXGlobal(SB), BX
	MOVQ	BX, ((const_checkRDX*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherRDXOriginal(SB), BX
	MOVQ	BX, ((const_checkRDX*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherLabel(SB), BX
	MOVQ	BX, ((const_checkLabel*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherLabelGlobal(SB), BX
	MOVQ	BX, ((const_checkLabel*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherLabelOriginal(SB), BX
	MOVQ	BX, ((const_checkLabel*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherAll(SB), BX
	MOVQ	BX, ((const_checkAll*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherAllGlobal(SB), BX
	MOVQ	BX, ((const_checkAll*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherAllOriginal(SB), BX
	MOVQ	BX, ((const_checkAll*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherDropRAX(SB), BX
	MOVQ	BX, ((const_checkDropRAX*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherDropRAXGlobal(SB), BX
	MOVQ	BX, ((const_checkDropRAX*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherDropRAXOriginal(SB), BX
	MOVQ	BX, ((const_checkDropRAX*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherDropRBX(SB), BX
	MOVQ	BX, ((const_checkDropRBX*const_numTails+const_tailNext)*8)(AX)
	LEAQ	·dispatcherDropRBXGlobal(SB), BX
	MOVQ	BX, ((const_checkDropRBX*const_numTails+const_tailGlobal)*8)(AX)
	LEAQ	·dispatcherDropRBXOriginal(SB), BX
	MOVQ	BX, ((const_checkDropRBX*const_numTails+const_tailOriginal)*8)(AX)
	LEAQ	·dispatcherGlobal(SB), BX
	MOVQ	BX, (const_checkGlobal*8)(AX)
	LEAQ	·dispatcherOriginal(SB), BX
	MOVQ	BX, (const_checkOriginal*8)(AX)
	RET

// func dispatcherPC() uintptr
// The ABI0 entry of dispatcher: a Go func value would name an ABI wrapper.
TEXT ·dispatcherPC(SB), NOSPLIT, $0-8
	LEAQ	·dispatcher(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// func slotDispatcherPC() uintptr
TEXT ·slotDispatcherPC(SB), NOSPLIT, $0-8
	LEAQ	·slotDispatcher(SB), AX
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
