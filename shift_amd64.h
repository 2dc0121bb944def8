// SHIFT_AFTER_RBX moves the integer argument registers after RBX down one
// (RCX to RBX, ..., R11 to R10), so that a generic dictionary passed in
// RBX drops out of the arguments: the work of a dictionary adapter
// (dict_amd64.s), which a dispatcher check also does itself
// (asm_amd64.s). Clobbers BX-R10.
#define SHIFT_AFTER_RBX \
	MOVQ	CX, BX; \
	MOVQ	DI, CX; \
	MOVQ	SI, DI; \
	MOVQ	R8, SI; \
	MOVQ	R9, R8; \
	MOVQ	R10, R9; \
	MOVQ	R11, R10
