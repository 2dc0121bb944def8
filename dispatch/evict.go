package dispatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/arch/x86/x86asm"
)

// EvictJump writes jmp rel32 at the entry whose rel32 runs over the first
// interior instruction boundary b, and a second jmp rel32 at b (its E9 is
// one of the first jump's rel32 bytes) to an eviction stub in a relay
// page: a copy of the instruction at b, then a jump back to the
// instruction after it. A thread stopped at b resumes through the stub and
// runs what it would have run; a thread at the entry takes the first jump.
// From E9Patch's neighbour eviction (Duck et al., PLDI 2020, tactic T3),
// for the tiny leaves whose second instruction pins rel32 bytes that no
// mappable address satisfies (low addresses of a non-PIE binary).
// Extensions, each in fitEvict: a memory access runs behind a nil check
// (evictNilCheck); the instruction after an evicted one may be evicted in
// turn (a chain of up to maxChain); each evicted instruction's jump may
// carry ignored prefixes.
const EvictJump = PastFrame + 1

// Eviction is one evicted instruction of an EvictJump patch: the jump
// written over it and the stub it leads to. The stub lives for the life of
// the process, like sites.
type Eviction struct {
	// Offset is the evicted instruction's offset from the entry, where
	// Jump goes.
	Offset int
	// Jump is E9 rel32 to Addr, after 0-2 ignored prefixes (3E).
	Jump []byte
	// Addr is the stub; Code is what is written there: the evicted
	// instruction's bytes, then jmp rel32 back to Offset+its length
	// (nothing after a ret).
	Addr uintptr
	Code []byte
	// NilCheck, when not 0, is the pointer register the evicted
	// instruction dereferences: Code starts with test r,r; jz rel32 to
	// Fault (the planner's NilFault), so that a nil pointer panics in Go
	// code, as the original instruction's fault would (evictNilCheck).
	NilCheck x86asm.Reg
	Fault    uintptr
	// Next is the next evicted instruction of a chain: its jump starts
	// inside this one's rel32. nil at the chain's end.
	Next *Eviction

	page *relayPage
}

// evictable reports why the instruction at b cannot run from an eviction
// stub, or "" when it can: its bytes are copied verbatim (a direct jmp or
// jcc is re-encoded to the same target), so it must not depend on its
// address otherwise (no RIP-relative operand) and must not call (a return
// address in a relay page is outside Go code, which the unwinder rejects),
// nor move the stack pointer other than by returning. A memory access is
// left to evictNilCheck: a fault in a relay page crashes the runtime
// instead of panicking, so it runs only behind a nil check.
func evictable(in inst) string {
	switch {
	case isCall(in.Op):
		return "a call"
	case isRelBranch(in):
		// Re-encoded with rel32 to the same target (relocate).
		return ""
	case in.PCRel != 0 || hiddenPCRelative(in.Inst):
		return "PC-relative"
	case in.Op == x86asm.RET:
		if in.Len != 1 {
			return "a ret with an immediate"
		}
		return ""
	case movesSP(in.Inst):
		return "moves SP"
	}
	switch in.Op {
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ, x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ,
		x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ, x86asm.XLATB, x86asm.INSB, x86asm.INSW, x86asm.INSD,
		x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		return "a string instruction, which accesses memory through implicit operands"
	case x86asm.INT, x86asm.UD1, x86asm.UD2, x86asm.HLT, x86asm.SYSCALL, x86asm.JMP,
		x86asm.LJMP, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.LRET:
		return "a trap or transfer"
	}
	return ""
}

// evictNilCheck decides how the instruction in, evicted after the
// instructions before (the function's, from the entry up to in), may
// access memory from a stub: it returns the register to nil-check (0 when
// in accesses no memory), or why it cannot run from a stub. A stub's
// fault is outside Go code and kills the process, so the stub runs
// test r,r; jz nilFault first, and the original instruction must fault
// exactly when r is nil:
//
//   - one memory operand [r+disp], r a 64-bit general register other than
//     RSP and RBP, no index, no segment, 0 <= disp < 4096: with r = 0 the
//     address lies in the unmapped zero page, where the original faults and
//     Go panics; with r a valid pointer neither faults;
//   - r holds a whole Go pointer, never nil plus an offset: the
//     instructions before leave it as the caller passed it, or load it
//     whole from memory (mov r64,[mem]). A pointer is nil or valid (the
//     garbage collector's invariant), and Go nil-checks a pointer before
//     deriving one from it;
//   - the instructions before write no flags: then the flags at in are the
//     entry's, which no Go function reads, so the check's test clobbers
//     nothing live;
//   - none of them moves SP: nilFault faults with the stack as at the
//     entry, 0(SP) the caller's return address.
func evictNilCheck(before []inst, in inst) (x86asm.Reg, string) {
	if !accesses(in.Op) {
		return 0, ""
	}
	var base x86asm.Reg
	for _, a := range in.Args {
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		switch {
		case base != 0:
			return 0, "two memory operands"
		case m.Segment != 0 || m.Index != 0:
			return 0, "a memory access through a segment or an index, which a nil check of one register cannot cover"
		case m.Base < x86asm.RAX || m.Base > x86asm.R15 || m.Base == x86asm.RSP || m.Base == x86asm.RBP:
			return 0, fmt.Sprintf("a memory access through %v, not a pointer register", m.Base)
		case m.Disp < 0 || m.Disp >= 4096:
			return 0, fmt.Sprintf("a memory access at %v%+#x, outside the zero page when %v is nil", m.Base, m.Disp, m.Base)
		}
		base = m.Base
	}
	if base == 0 {
		return 0, ""
	}
	for _, prev := range before {
		switch prev.Op {
		case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD, x86asm.LEA, x86asm.NOP:
		default:
			return 0, fmt.Sprintf("a memory access after %v, which may write flags the nil check would clobber", prev.Op)
		}
		if movesSP(prev.Inst) {
			return 0, fmt.Sprintf("a memory access after %v, which moves SP", prev.Inst)
		}
		if mayWrite(prev.Inst, base) {
			dst, _ := prev.Args[0].(x86asm.Reg)
			_, load := prev.Args[1].(x86asm.Mem)
			if prev.Op != x86asm.MOV || dst != base || !load {
				return 0, fmt.Sprintf("a memory access through %v, which %v computes (it may be nil plus an offset)", base, prev.Inst)
			}
		}
	}
	return base, ""
}

// maxChain is the most instructions one EvictJump patch evicts.
const maxChain = 3

// evictChains are the chains candidates tries, computed once.
var evictChains = evictPrefixes()

// evictPrefixes lists the chains fitEvict tries, in order: each is the
// prefix count of every evicted instruction's jump, shortest chains and
// fewest prefixes first.
func evictPrefixes() [][]int {
	var out [][]int
	var grow func(ms []int, depth int)
	grow = func(ms []int, depth int) {
		if len(ms) == depth {
			out = append(out, slices.Clone(ms))
			return
		}
		for m := 0; m <= 2; m++ {
			grow(append(ms, m), depth)
		}
	}
	for depth := 1; depth <= maxChain; depth++ {
		grow(nil, depth)
	}
	return out
}

// evLink is one evicted instruction of a candidate and the register its
// stub nil-checks (0: none).
type evLink struct {
	in       inst
	nilReg   x86asm.Reg
	prefixes int // ignored prefixes before its jump's E9
}

// fitEvict builds the EvictJump candidate with n ignored prefixes before
// the entry jump that evicts depth instructions: the first interior
// boundary b1, and, for depth > 1, a chain: the first instruction starting
// inside the previous evicted instruction's jump is evicted too, its own
// jump's E9 being one of that jump's rel32 bytes. Every other instruction
// starting inside the jumps keeps its bytes (pinned in each rel32 that
// covers them); bytes two jumps share are chosen by the earlier one
// (placeEvictions). All the jumps lie in one aligned quadword of the
// function's own bytes, or an aligned octoword (CMPXCHG16B).
//
// ms[k] is the number of ignored prefixes (3E) before the E9 of the k-th
// evicted instruction's jump, as for the entry jump: they shift which of
// its rel32 bytes the instructions after it pin. Prefixes and E9 lie in
// the evicted instruction's own bytes, so no boundary falls among them.
func (p *prologue) fitEvict(mode Mode, entry uintptr, n int, ms []int) (candidate, error) {
	f := p.fn
	c := candidate{tactic: EvictJump, opcode: 0xE9, prefix: make([]byte, n)}
	depth := len(ms)
	if mode != SiteMode || depth < 1 || len(p.insts) < 1+depth {
		return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: site mode only, and needs %d instructions after the first", depth))
	}
	b := p.insts[1].off
	end1 := n + 5
	if b <= n || b >= end1 {
		return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: the second instruction at +%d is not inside a %d-byte entry jump", b, end1))
	}
	// The chain: instruction k+1 is evicted when it starts inside the jump
	// written over instruction k (after that jump's E9).
	for k := 1; k <= depth; k++ {
		if in := p.insts[k]; ms[k-1] < 0 || ms[k-1]+1 > in.Len {
			return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: %d prefixes and E9 do not fit the %d-byte instruction at +%d", ms[k-1], in.Len, in.off))
		}
		if k == 1 {
			continue
		}
		if prev, in := p.insts[k-1], p.insts[k]; in.off >= prev.off+ms[k-2]+5 {
			return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: no instruction starts inside the jump at +%d to evict next", prev.off))
		}
	}
	last := p.insts[depth].off
	end := last + ms[depth-1] + 5
	// The jumps go in with one atomic store: an aligned quadword at the
	// entry, or, where CMPXCHG16B exists and the entry is 16-byte aligned
	// (every Go function is 32-byte aligned), an aligned octoword.
	width := 8
	if end > 8 && entry&15 == 0 && wideOK() {
		width = 16
	}
	if entry&7 != 0 || end > width || len(f.Bytes) < width {
		return c, refuse(f, ReasonQuadword, fmt.Sprintf("eviction: jumps [+0,+%d) to +%d do not fit an aligned %d bytes of the function's own at the entry", end1, end, width))
	}
	if movesSP(p.insts[0].Inst) {
		return c, refuse(f, ReasonPins, "eviction: the first instruction moves SP")
	}
	for k := 1; k <= depth; k++ {
		in := p.insts[k]
		if why := evictable(in); why != "" {
			return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: the instruction at +%d (%v) is %s", in.off, in.Inst, why))
		}
		nilReg, why := evictNilCheck(p.insts[:k], in)
		if why != "" {
			return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: the instruction at +%d (%v) is %s", in.off, in.Inst, why))
		}
		// The check's premises (entry flags, a pointer the caller passed or
		// loaded) hold only on the straight path from the entry.
		if at, back := p.backEdge(in.off); nilReg != 0 && back {
			return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: the branch at +%#x lands at or before the nil-checked instruction at +%d", at, in.off))
		}
		c.evs = append(c.evs, evLink{in, nilReg, ms[k-1]})
	}
	for i := range n {
		c.prefix[i] = 0x3E
	}
	// fixed[a]: what byte a must be before any rel32 is chosen: E9 where a
	// jump starts, the original byte of an instruction that starts inside
	// the jumps and is not evicted; -1 for free.
	for a := range c.fixed {
		c.fixed[a] = -1
	}
	for _, in := range p.insts[1:] {
		if in.off >= end {
			break
		}
		for a := in.off; a < in.off+in.Len && a < end; a++ {
			c.fixed[a] = int16(f.Bytes[a])
		}
	}
	for _, l := range c.evs {
		for a := l.in.off; a < l.in.off+l.in.Len && a < end; a++ {
			c.fixed[a] = -1
		}
		for a := l.in.off; a < l.in.off+l.prefixes; a++ {
			c.fixed[a] = 0x3E
		}
		c.fixed[l.in.off+l.prefixes] = 0xE9
	}
	c.pins = c.fixed.pins(n + 1)
	return c, nil
}

// evBytes are the bytes an EvictJump patch has decided, from the entry:
// -1 where free.
type evBytes [16]int16

// pins returns the pins of a rel32 starting at offset at.
func (e *evBytes) pins(at int) Pins {
	var ps Pins
	for k := range 4 {
		if v := e[at+k]; v >= 0 {
			ps.Mask |= 0xff << (8 * uint(k))
			ps.Value |= uint32(v) << (8 * uint(k))
		}
	}
	return ps
}

// setRel records a rel32 written at offset at.
func (e *evBytes) setRel(at int, rel int32) {
	for k := range 4 {
		e[at+k] = int16(byte(uint32(rel) >> (8 * uint(k))))
	}
}

// isRelBranch reports a direct jmp or jcc, which relocate re-encodes with
// rel32 to the same target.
func isRelBranch(in inst) bool {
	if _, ok := branchTarget(in); !ok {
		return false
	}
	return in.Op == x86asm.JMP || in.Op >= x86asm.JA && in.Op <= x86asm.JS && in.Op != x86asm.JMP && in.Op != x86asm.JCXZ && in.Op != x86asm.JECXZ && in.Op != x86asm.JRCXZ
}

// evictStubSize is the stub's size: the instruction (a branch widened to
// rel32) and a jump back, which a ret or jmp does not need.
func evictStubSize(in inst, nilReg x86asm.Reg) int {
	if nilReg != 0 {
		return 3 + 6 + evictStubSize(in, 0)
	}
	switch {
	case in.Op == x86asm.RET:
		return in.Len
	case in.Op == x86asm.JMP:
		return 5
	case isRelBranch(in):
		return 6 + 5
	}
	return in.Len + 5
}

// placeEvictions reserves the eviction stubs of candidate c, whose entry
// jump's rel32 is rel1, and builds their jumps and stubs, in chain order:
// each jump's rel32 keeps the bytes fixed before (the candidate's, and
// those of the jumps placed before it). The caller holds pl.mu. On failure
// nothing stays reserved.
func (pl *Planner) placeEvictions(f Func, c candidate, rel1 int32) (*Eviction, error) {
	img := c.fixed
	img.setRel(len(c.prefix)+1, rel1)
	var head, prev *Eviction
	undo := func() {
		for ev := head; ev != nil; ev = ev.Next {
			ev.page.release(int(ev.Addr-ev.page.addr), len(ev.Code))
		}
	}
	for _, l := range c.evs {
		at := l.in.off + l.prefixes + 1
		ev, err := pl.placeEviction(f, l, img.pins(at))
		if err != nil {
			undo()
			return nil, err
		}
		img.setRel(at, int32(binary.LittleEndian.Uint32(ev.Jump[l.prefixes+1:])))
		if head == nil {
			head = ev
		} else {
			prev.Next = ev
		}
		prev = ev
	}
	return head, nil
}

// placeEviction reserves the stub of one evicted instruction whose jump's
// rel32 must satisfy ps, and builds the jump and the stub.
func (pl *Planner) placeEviction(f Func, l evLink, ps Pins) (*Eviction, error) {
	in := l.in
	if l.nilReg != 0 && pl.NilFault == 0 {
		return nil, fmt.Errorf("eviction stub: the instruction at +%d dereferences %v, and no nil-fault stub is known", in.off, l.nilReg)
	}
	size := evictStubSize(in, l.nilReg)
	from := f.Entry + uintptr(in.off+l.prefixes+5)
	addr, pg, ok := pl.relay.inPages(from, ps, size)
	if !ok {
		var err error
		if addr, pg, err = pl.relay.fresh(from, ps, size); err != nil {
			return nil, fmt.Errorf("eviction stub for +%d: %w", in.off, err)
		}
	}
	ev := &Eviction{Offset: in.off, Addr: addr, page: pg}
	ev.Jump = append(bytes.Repeat([]byte{0x3E}, l.prefixes), 0xE9, 0, 0, 0, 0)
	putRel(ev.Jump[l.prefixes+1:], int32(int64(addr)-int64(from)))
	// The nil check, the copy (a branch re-encoded to its target), and the
	// jump back.
	var checks []x86asm.Reg
	if l.nilReg != 0 {
		checks = []x86asm.Reg{l.nilReg}
		ev.NilCheck, ev.Fault = l.nilReg, pl.NilFault
	}
	code, err := relocate(f, []inst{in}, addr, checks, pl.NilFault)
	if err == nil && len(code) != size {
		err = fmt.Errorf("%d bytes, planned %d", len(code), size)
	}
	if err != nil {
		pg.release(int(addr-pg.addr), size)
		return nil, fmt.Errorf("eviction stub %#x: %v", addr, err)
	}
	ev.Code = code
	return ev, nil
}

// simulated reports whether a stub of the chain lies in a simulated page
// (nothing to write to); false for no chain.
func (ev *Eviction) simulated() bool {
	for ; ev != nil; ev = ev.Next {
		if ev.page.mem == nil {
			return true
		}
	}
	return false
}

// release frees n bytes at off that take reserved, when a plan that
// reserved them fails later on.
func (p *relayPage) release(off, n int) {
	for i := off; i < off+n; i++ {
		p.used[i/64] &^= 1 << (i % 64)
	}
}

// accesses reports whether an instruction with a memory operand touches
// that memory, and so faults where it is unmapped: lea computes the
// address only, and nop and the prefetches never fault.
func accesses(op x86asm.Op) bool {
	switch op {
	case x86asm.LEA, x86asm.NOP, x86asm.PREFETCHNTA, x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHW:
		return false
	}
	return true
}
