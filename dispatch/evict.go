package dispatch

import (
	"fmt"

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
const EvictJump = PastFrame + 1

// Eviction is the second jump of an EvictJump patch and the stub it leads
// to. The stub lives for the life of the process, like sites.
type Eviction struct {
	// Offset is the evicted instruction's offset from the entry, where
	// Jump goes.
	Offset int
	// Jump is E9 rel32 to Addr.
	Jump []byte
	// Addr is the stub; Code is what is written there: the evicted
	// instruction's bytes, then jmp rel32 back to Offset+its length
	// (nothing after a ret).
	Addr uintptr
	Code []byte

	page *relayPage
}

// evictable reports why the instruction at b cannot run from an eviction
// stub, or "" when it can: its bytes are copied verbatim (a direct jmp or
// jcc is re-encoded to the same target), so it must not depend on its
// address otherwise (no RIP-relative operand) and must not fault or call (a fault or a return address in a relay page is
// outside Go code, which crashes the runtime instead of panicking), nor
// move the stack pointer other than by returning.
func evictable(in inst) string {
	switch {
	case isCall(in.Op):
		return "a call"
	case isRelBranch(in):
		// Re-encoded with rel32 to the same target (relocate).
		return ""
	case in.PCRel != 0:
		return "PC-relative"
	case in.Op == x86asm.RET:
		if in.Len != 1 {
			return "a ret with an immediate"
		}
		return ""
	case movesSP(in.Inst):
		return "moves SP"
	}
	for _, a := range in.Args {
		if _, ok := a.(x86asm.Mem); ok && in.Op != x86asm.LEA {
			return "accesses memory, which may fault"
		}
	}
	switch in.Op {
	case x86asm.INT, x86asm.UD1, x86asm.UD2, x86asm.HLT, x86asm.SYSCALL, x86asm.JMP,
		x86asm.LJMP, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.LRET:
		return "a trap or transfer"
	}
	return ""
}

// fitEvict builds the EvictJump candidate with n ignored prefixes before
// the entry jump. Only the first interior boundary b is evicted; the
// instructions starting after it, up to the end of the second jump, keep
// their bytes (both jumps' rel32s are pinned there). Both jumps must lie
// in one aligned quadword of the function's own bytes.
func (p *prologue) fitEvict(mode Mode, entry uintptr, n int) (candidate, error) {
	f := p.fn
	c := candidate{tactic: EvictJump, opcode: 0xE9, prefix: make([]byte, n)}
	if mode != SiteMode || len(p.insts) < 2 {
		return c, refuse(f, ReasonPins, "eviction: site mode only, and needs a second instruction")
	}
	b := p.insts[1].off
	end1 := n + 5
	if b <= n || b >= end1 {
		return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: the second instruction at +%d is not inside a %d-byte entry jump", b, end1))
	}
	end2 := b + 5
	// Both jumps go in with one atomic store: an aligned quadword at the
	// entry, or, where CMPXCHG16B exists and the entry is 16-byte aligned
	// (every Go function is 32-byte aligned), an aligned octoword.
	width := 8
	if end2 > 8 && entry&15 == 0 && wideOK() {
		width = 16
	}
	if entry&7 != 0 || end2 > width || len(f.Bytes) < width {
		return c, refuse(f, ReasonQuadword, fmt.Sprintf("eviction: jumps [+0,+%d) and [+%d,+%d) do not fit an aligned %d bytes of the function's own at the entry", end1, b, end2, width))
	}
	if movesSP(p.insts[0].Inst) {
		return c, refuse(f, ReasonPins, "eviction: the first instruction moves SP")
	}
	if why := evictable(p.insts[1]); why != "" {
		return c, refuse(f, ReasonPins, fmt.Sprintf("eviction: the instruction at +%d (%v) is %s", b, p.insts[1].Inst, why))
	}
	for i := range n {
		c.prefix[i] = 0x3E
	}
	// kept[a]: byte a belongs to an instruction starting inside the second
	// jump, so both jumps must leave it as it is.
	kept := func(a int) bool {
		for _, in := range p.insts[2:] {
			if in.off > b && in.off < end2 && a >= in.off && a < in.off+in.Len {
				return true
			}
		}
		return false
	}
	pin := func(ps *Pins, k int, v byte) {
		ps.Mask |= 0xff << (8 * uint(k))
		ps.Value |= uint32(v) << (8 * uint(k))
	}
	for a := n + 1; a < end1; a++ {
		switch {
		case a == b:
			pin(&c.pins, a-n-1, 0xE9)
		case a > b && kept(a):
			pin(&c.pins, a-n-1, f.Bytes[a])
		}
	}
	// The second jump's own pins, where it does not share bytes with the
	// first; shared bytes follow the first jump's rel32 (evictPins).
	for a := max(b+1, end1); a < end2; a++ {
		if kept(a) {
			pin(&c.evPins, a-b-1, f.Bytes[a])
		}
	}
	c.evict, c.evInst = b, p.insts[1]
	return c, nil
}

// evictPins are the second jump's pins once the first jump's rel32 is
// chosen: its own, plus the bytes it shares with the first rel32.
func (c candidate) evictPins(rel1 int32) Pins {
	ps := c.evPins
	n := len(c.prefix)
	for a := c.evict + 1; a < n+5; a++ {
		v := byte(uint32(rel1) >> (8 * uint(a-n-1)))
		ps.Mask |= 0xff << (8 * uint(a-c.evict-1))
		ps.Value |= uint32(v) << (8 * uint(a-c.evict-1))
	}
	return ps
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
func evictStubSize(in inst) int {
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

// placeEviction reserves the eviction stub of candidate c, whose entry
// jump's rel32 is rel1, and builds the second jump and the stub. The
// caller holds pl.mu.
func (pl *Planner) placeEviction(f Func, c candidate, rel1 int32) (*Eviction, error) {
	in := c.evInst
	size := evictStubSize(in)
	ps := c.evictPins(rel1)
	from := f.Entry + uintptr(c.evict+5)
	addr, pg, ok := pl.relay.inPages(from, ps, size)
	if !ok {
		var err error
		if addr, pg, err = pl.relay.fresh(from, ps, size); err != nil {
			return nil, fmt.Errorf("eviction stub: %w", err)
		}
	}
	ev := &Eviction{Offset: c.evict, Addr: addr, page: pg}
	ev.Jump = []byte{0xE9, 0, 0, 0, 0}
	putRel(ev.Jump[1:], int32(int64(addr)-int64(from)))
	// The copy, a branch re-encoded to its target, and the jump back.
	code, err := relocate(f, []inst{in}, addr, nil, 0)
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

// release frees n bytes at off that take reserved, when a plan that
// reserved them fails later on.
func (p *relayPage) release(off, n int) {
	for i := off; i < off+n; i++ {
		p.used[i/64] &^= 1 << (i % 64)
	}
}
