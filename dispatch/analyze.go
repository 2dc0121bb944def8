package dispatch

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/arch/x86/x86asm"
)

// Func is what the analyzer needs to know about one function.
type Func struct {
	Name  string
	Entry uintptr
	// Size is the length of the function's instructions.
	Size int
	// Bytes runs from Entry to the next symbol: Size bytes of code, then
	// padding. No thread executes padding, so a patch may run into it but
	// not past it. Bytes may alias live text; Plan copies what it keeps.
	Bytes []byte
}

func (f Func) code() []byte { return f.Bytes[:f.Size] }

// Tactic names how a patch keeps every instruction boundary it covers.
type Tactic uint8

const (
	// EntryJump writes jmp rel32 at the entry over one instruction of at
	// least 5 bytes (or over padding): rel32 is free.
	EntryJump Tactic = iota + 1
	// PunnedJump writes jmp rel32 at the entry; the rel32 bytes that overlap
	// later instructions keep their original values.
	PunnedJump
	// PrefixedJump puts 1-3 ignored prefixes (26/36/3E, a REX last) before
	// the opcode, shifting which rel32 bytes are pinned.
	PrefixedJump
	// PastNop moves the patch point past the 1-byte nops (0x90) the
	// function starts with, up to maxNopRun of them.
	PastNop
	// PastPushRBP moves the patch point past push rbp; the relay site pops
	// it again before the dispatcher runs.
	PastPushRBP
	// PastScratch moves the patch point past a first instruction that only
	// writes R12 or R13 (mov r12,rsp of a frame above 4 KiB): both are
	// scratch at function entry and the dispatcher overwrites R12 anyway,
	// so a goroutine stopped after it may take the patch unchanged.
	PastScratch
)

func (t Tactic) String() string {
	switch t {
	case EntryJump:
		return "entry-jump"
	case PunnedJump:
		return "punned-jump"
	case PrefixedJump:
		return "prefixed-jump"
	case PastNop:
		return "past-nop"
	case PastPushRBP:
		return "past-push-rbp"
	case PastScratch:
		return "past-scratch"
	case EvictJump:
		return "evict-jump"
	}
	return cTacticString(t)
}

// Tactics lists the Go tactics in the order they are tried.
func Tactics() []Tactic {
	return []Tactic{EntryJump, PunnedJump, PrefixedJump, PastNop, PastPushRBP, PastScratch, EvictJump}
}

// Mode is what the patched prologue holds.
type Mode uint8

const (
	// SiteMode writes jmp rel32 to a relay site that calls the dispatcher.
	SiteMode Mode = iota
	// CallMode writes call rel32 (via a relay stub) to the call-mode
	// dispatcher, which rewrites the return slot. Kept for comparison.
	CallMode
)

func (m Mode) String() string {
	if m == CallMode {
		return "call"
	}
	return "site"
}

func (m Mode) opcode() byte {
	if m == CallMode {
		return 0xE8
	}
	return 0xE9
}

// inst is one decoded instruction of the function.
type inst struct {
	off int
	x86asm.Inst
	// opaque: x86asm cannot decode it and adxLen measured it; only its
	// length is known, so decodeAll allows it only past opaqueFrom.
	opaque bool
}

// opaqueFrom is where opaque instructions may start: past every byte a
// patch, an eviction or a trampoline reads or writes (an octoword).
const opaqueFrom = 16

// prologue is the analysis of one function, shared by all its candidates.
type prologue struct {
	fn    Func
	insts []inst // in address order
	// restart is the offset of the stack-growth tail's JMP back to the
	// entry (-1 if none): the only branch allowed to reach offset 0.
	restart int
	// isMorestack names runtime.morestack*, when the caller can.
	isMorestack func(pc uintptr) bool
}

// decodeAll decodes the whole function linearly. Go emits no data in text,
// so every branch target is one of these boundaries.
func decodeAll(f Func, isMorestack func(uintptr) bool) (*prologue, error) {
	code := f.code()
	// Sized for short instructions (Go averages about 4 bytes): growing
	// the slice, and a map of offsets it replaced, were a quarter of the
	// decoding's time in a later first Set.
	p := &prologue{fn: f, insts: instBuf(len(code)/3 + 1), restart: -1, isMorestack: isMorestack}
	for off := 0; off < len(code); {
		in, err := decodeKnown(code[off:])
		// x86asm reports a truncated or lone-prefix instruction as a
		// one-byte Inst with no opcode and no error.
		if err == nil && (in.Len == 0 || in.Op == 0) {
			err = x86asm.ErrTruncated
		}
		if n, ok := adxLen(code[off:]); err != nil && ok && off >= opaqueFrom {
			p.insts = append(p.insts, inst{off: off, Inst: x86asm.Inst{Len: n}, opaque: true})
			off += n
			continue
		}
		// Only the padding after the code can differ after an instruction
		// that punning keeps, so only the last ones need the check.
		if err == nil && off+maxInstLen > len(code) && !stable(code[off:off+in.Len], in) {
			err = errUnstable
		}
		if err == nil && off+maxInstLen == len(code) {
			// Decoded from exactly 15 bytes, too few for decodeKnown to
			// remember it, too many to need stable; a stack-growth tail's
			// reload lands here in most functions. Its answer only decides
			// whether it is remembered.
			stable(code[off:off+in.Len], in)
		}
		if err != nil {
			return nil, refuse(f, ReasonDecode, fmt.Sprintf("cannot decode the instruction at +%#x (% x): %v", off, head(code[off:], 8), err))
		}
		p.insts = append(p.insts, inst{off: off, Inst: in})
		off += in.Len
	}
	p.restart = p.findRestart()
	return p, nil
}

func head(b []byte, n int) []byte { return b[:min(n, len(b))] }

// instBufs recycles decodeAll's instruction lists through release: a
// later first Set otherwise takes fresh heap pages for one, and their page
// faults cost more than the decoding.
var instBufs = sync.Pool{New: func() any { return new([]inst) }}

// instBuf returns an empty list with room for n instructions.
func instBuf(n int) []inst {
	b := instBufs.Get().(*[]inst)
	if cap(*b) < n {
		*b = make([]inst, 0, n)
	}
	insts := (*b)[:0]
	*b = nil
	instBufs.Put(b)
	return insts
}

// release gives p's instruction list back for another decodeAll; p must
// not be used after, nor any slice of its instructions: what outlives it
// (candidates, evictions, errors) holds copies.
func (p *prologue) release() {
	b := instBufs.Get().(*[]inst)
	*b = p.insts[:0]
	instBufs.Put(b)
	p.insts = nil
}

// at returns the index of the instruction starting at offset off, or false
// when off is no instruction boundary.
func (p *prologue) at(off int) (int, bool) {
	return slices.BinarySearchFunc(p.insts, off, func(in inst, off int) int { return cmp.Compare(in.off, off) })
}

var errUnstable = errors.New("decoding depends on the bytes after the instruction")

// maxInstLen is the longest x86 instruction, and how far a decoder reads.
const maxInstLen = 15

// stable reports whether an instruction decodes the same whatever follows
// it. Punning keeps an instruction's own bytes, not its neighbours', so an
// instruction the decoder reads differently with other trailing bytes
// (x86asm does, for some truncated VEX forms) cannot be trusted.
func stable(b []byte, in x86asm.Inst) bool {
	// A known instruction decodes the same before any byte after it, at
	// least one (decodeKnown): the fills are such bytes. k == in compares
	// every field, stricter than the fills' check.
	if k, ok := lookupKnown(b); ok && k.Len == len(b) {
		return k == in
	}
	return stableFills(b, in)
}

// stableFills is stable by decoding b before three fills. One found
// stable is remembered (decodeKnown): the fills 00 and FF turn the mod
// field after it both ways, and each decode has more than maxInstLen
// bytes; Go's stack-growth tails spill and reload registers with
// instructions that appear nowhere else.
func stableFills(b []byte, in x86asm.Inst) bool {
	var arr [2*maxInstLen + 1]byte
	var first x86asm.Inst
	for i, fill := range []byte{0x00, 0xCC, 0xFF} {
		buf := arr[:copy(arr[:], b)+maxInstLen+1]
		for i := len(b); i < len(buf); i++ {
			buf[i] = fill
		}
		again, err := decode(buf)
		if err != nil || again.Len != in.Len || again.Op != in.Op || again.Args != in.Args || again.Prefix != in.Prefix {
			return false
		}
		switch {
		case i == 0:
			first = again
		case again != first:
			return true // stable as far as decodeAll asks, not remembered
		}
	}
	remember(b, first)
	return true
}

// branchTarget returns the target offset of a direct branch, or false.
func branchTarget(in inst) (int, bool) {
	for _, a := range in.Args {
		if r, ok := a.(x86asm.Rel); ok {
			return in.off + in.Len + int(r), true
		}
	}
	return 0, false
}

func isCall(op x86asm.Op) bool { return op == x86asm.CALL || op == x86asm.LCALL }

// findRestart finds the stack-growth tail of a Go prologue: the stack check
// is a conditional forward branch among the first instructions; the tail
// it leads to calls runtime.morestack and then jumps back to the entry with
// the entry's state restored. That JMP is a fresh call of the function and
// may safely land on the patch. When the planner can name call targets, the
// call must be to runtime.morestack*; otherwise any call in the tail counts
// (compiled Go has no other call there; hand-written assembly might).
func (p *prologue) findRestart() int {
	for i := 0; i < len(p.insts) && i < 6; i++ {
		in := p.insts[i]
		if in.Op == x86asm.JMP || isCall(in.Op) || in.Op == x86asm.RET {
			return -1
		}
		t, ok := branchTarget(in)
		if !ok || t <= in.off {
			continue
		}
		k, ok := p.at(t)
		if !ok {
			return -1
		}
		called := false
		for ; k < len(p.insts); k++ {
			in := p.insts[k]
			if isCall(in.Op) {
				t, ok := branchTarget(in)
				called = ok && (p.isMorestack == nil || p.isMorestack(p.fn.Entry+uintptr(t)))
			}
			if in.Op == x86asm.JMP {
				if to, ok := branchTarget(in); ok && to == 0 && called {
					return in.off
				}
				return -1
			}
			if in.Op == x86asm.RET {
				return -1
			}
		}
		return -1
	}
	return -1
}

// backEdge reports a branch, other than the stack-growth restart, that lands
// at or before the patch point at offset upto (an instruction before it
// falls through into it). A goroutine taking it would enter the patch
// mid-call, with the function's state rather than its caller's.
func (p *prologue) backEdge(upto int) (int, bool) {
	for _, in := range p.insts {
		if isCall(in.Op) {
			continue
		}
		t, ok := branchTarget(in)
		if !ok || t < 0 || t > upto || t == 0 && in.off == p.restart {
			continue
		}
		return in.off, true
	}
	return 0, false
}

// candidate is one way to patch the function, before a site is chosen.
type candidate struct {
	tactic Tactic
	offset int    // patch point, from the entry
	prefix []byte // ignored prefixes before the opcode
	opcode byte
	pins   Pins
	// evs are the instructions an EvictJump candidate evicts, in chain
	// order; fixed the bytes its jumps must have before any rel32 is
	// chosen (fitEvict).
	evs   []evLink
	fixed evBytes
}

func (c candidate) len() int { return len(c.prefix) + 5 }

// bytes returns the patch for a given rel32.
func (c candidate) bytes(rel int32) []byte {
	b := append(append([]byte{}, c.prefix...), c.opcode, 0, 0, 0, 0)
	putRel(b[len(b)-4:], rel)
	return b
}

func putRel(b []byte, rel int32) {
	b[0], b[1], b[2], b[3] = byte(rel), byte(rel>>8), byte(rel>>16), byte(rel>>24)
}

// ignorablePrefix reports whether b may stand before E8/E9 at prefix
// position i of n: a segment override (ignored in 64-bit mode), or a REX,
// which must come last. 0x66 is never used: AMD honours it and truncates
// RIP.
func ignorablePrefix(b byte, i, n int) bool {
	switch b {
	case 0x26, 0x36, 0x3E:
		return true
	}
	return b&0xF0 == 0x40 && i == n-1
}

// point is a patch point: its offset, and its tactic (0: decided by the
// prefixes and pins of each candidate there).
type point struct {
	off    int
	tactic Tactic
}

// candidates lists the patches that keep every interior boundary, in the
// order they are tried. It returns the first refusal if there is none.
func (p *prologue) candidates(mode Mode, entry uintptr) ([]candidate, error) {
	f := p.fn
	offsets := []point{{0, 0}}
	if first := p.insts[0]; len(p.insts) > 1 {
		switch {
		case first.Len == 1 && f.Bytes[0] == 0x90:
			for k := 1; k <= p.nopRun(); k++ {
				offsets = append(offsets, point{k, PastNop})
			}
		case first.Len == 1 && f.Bytes[0] == 0x55 && mode == SiteMode:
			// Call mode cannot undo the push: its dispatcher has the
			// return address on top of the saved rbp.
			offsets = append(offsets, point{1, PastPushRBP})
		case writesScratchOnly(first.Inst):
			offsets = append(offsets, point{first.Len, PastScratch})
		}
	}
	cands, err := p.fitAll(mode, entry, offsets)
	if len(cands) > 0 {
		return cands, nil
	}
	return nil, err
}

// evictions lists the EvictJump candidates, in the order they are tried.
// Eviction is the last resort: it costs stubs, and a thread stopped at an
// evicted instruction takes two more jumps; Plan builds them only when no
// other candidate found a window.
func (p *prologue) evictions(mode Mode, entry uintptr) []candidate {
	if _, back := p.backEdge(0); back || len(p.insts) < 2 || p.insts[1].off > 2+4 {
		return nil // a loop back to the entry, or b past every entry jump's rel32
	}
	var cands []candidate
	for _, ms := range evictChains {
		for n := 0; n <= 2; n++ {
			if c, err := p.fitEvict(mode, entry, n, ms); err == nil {
				cands = append(cands, c)
			}
		}
	}
	return cands
}

// maxNopRun bounds the leading nops a patch point may move past: the
// patch must still end in the entry's aligned quadword (+8), and the
// trampoline copies the nops with the instruction after them.
const maxNopRun = 3

// nopRun counts the 1-byte nops (0x90) the function starts with, up to
// maxNopRun and never all of its instructions. The compiler emits runs of
// them for inlining marks. A thread stopped between two of them runs nops
// up to the patch point and takes the patch with the entry's registers and
// stack, as a thread at the entry would.
func (p *prologue) nopRun() int {
	k := 0
	for k < maxNopRun && k+1 < len(p.insts) && p.insts[k].Len == 1 && p.fn.Bytes[k] == 0x90 {
		k++
	}
	return k
}

// errQuiet stands for a refusal fitAll drops: it keeps the first only, and
// formatting the others was a few percent of a later first Set.
var errQuiet = errors.New("refused")

// fitAll fits every prefix count at every patch point, in order, skipping
// points a branch jumps back into. It returns the first refusal if no
// candidate fits.
func (p *prologue) fitAll(mode Mode, entry uintptr, points []point) ([]candidate, error) {
	var out []candidate
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, o := range points {
		if at, ok := p.backEdge(o.off); ok {
			note(refuse(p.fn, ReasonBackEdge, fmt.Sprintf("the branch at +%#x jumps back into the patch point +%#x", at, o.off)))
			continue
		}
		for n := 0; n <= 3; n++ {
			c, err := p.fit(mode, entry, o.off, n, first != nil)
			if err != nil {
				note(err)
				continue
			}
			c.tactic = o.tactic
			if c.tactic == 0 {
				switch {
				case n > 0:
					c.tactic = PrefixedJump
				case c.pins.Free():
					c.tactic = EntryJump
				default:
					c.tactic = PunnedJump
				}
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, first
	}
	return out, nil
}

// fit builds the candidate with n prefixes at offset off, pinning every
// patch byte that overlaps an instruction starting inside the patch. A
// quiet refusal is errQuiet, its message never formatted.
func (p *prologue) fit(mode Mode, entry uintptr, off, n int, quiet bool) (candidate, error) {
	f := p.fn
	fail := func(r Reason, format string, args ...any) error {
		if quiet {
			return errQuiet
		}
		return refuse(f, r, fmt.Sprintf(format, args...))
	}
	c := candidate{offset: off, opcode: mode.opcode(), prefix: make([]byte, n)}
	end := off + c.len()
	if end > len(f.Bytes) {
		return c, fail(ReasonRoom, "a %d-byte patch at +%d runs past the function's %d bytes into the next symbol", c.len(), off, len(f.Bytes))
	}
	// The atomic store writes a whole aligned quadword: the patch must fit
	// in it, and all of it must be this function's, code or padding.
	if q := (entry + uintptr(off)) &^ 7; entry+uintptr(end) > q+8 || q < entry || q+8 > entry+uintptr(len(f.Bytes)) {
		return c, fail(ReasonQuadword, "the patch [+%d,+%d) at %#x does not fit an aligned quadword of the function's own bytes", off, end, entry+uintptr(off))
	}
	if mode == CallMode {
		// The return address the dispatcher keys on must lie in the
		// function's code: in padding the runtime's pc tables throw.
		if end >= f.Size {
			return c, fail(ReasonCallReturn, "the call's return address +%d is outside the function's %d bytes of code", end, f.Size)
		}
		// Every instruction before it must leave SP alone, so that an
		// unwinder at the dispatcher finds the caller at 8(SP).
		for _, in := range p.insts {
			if in.off >= end {
				break
			}
			if movesSP(in.Inst) {
				return c, fail(ReasonCallReturn, "the instruction at +%d (%v) moves SP before the call's return address", in.off, in.Inst)
			}
		}
	}
	for i := range n {
		c.prefix[i] = 0x3E
	}
	// pinned[j]: patch byte j must keep its original value.
	for _, in := range p.insts {
		if in.off <= off || in.off >= end {
			continue
		}
		for a := in.off; a < in.off+in.Len && a < end; a++ {
			j, orig := a-off, f.Bytes[a]
			switch {
			case j < n:
				if !ignorablePrefix(orig, j, n) {
					return c, fail(ReasonPins, "prefix byte +%d must keep %#02x of the instruction at +%d", a, orig, in.off)
				}
				c.prefix[j] = orig
			case j == n:
				if orig != c.opcode {
					return c, fail(ReasonPins, "opcode byte +%d must keep %#02x of the instruction at +%d", a, orig, in.off)
				}
			default:
				k := uint(j - n - 1)
				c.pins.Mask |= 0xff << (8 * k)
				c.pins.Value |= uint32(orig) << (8 * k)
			}
		}
	}
	return c, nil
}

// writesScratchOnly reports whether an instruction only writes R12 or R13
// from registers or an address computation: mov r12,rsp or lea r12,[rsp-N].
func writesScratchOnly(in x86asm.Inst) bool {
	if in.Op != x86asm.MOV && in.Op != x86asm.LEA {
		return false
	}
	if dst, ok := in.Args[0].(x86asm.Reg); !ok || dst != x86asm.R12 && dst != x86asm.R13 {
		return false
	}
	switch src := in.Args[1].(type) {
	case x86asm.Reg:
		return in.Op == x86asm.MOV && src >= x86asm.RAX && src <= x86asm.R15
	case x86asm.Mem:
		return in.Op == x86asm.LEA
	}
	return false
}

// movesSP reports whether an instruction changes RSP.
func movesSP(in x86asm.Inst) bool {
	switch in.Op {
	case x86asm.PUSH, x86asm.POP, x86asm.CALL, x86asm.RET, x86asm.ENTER, x86asm.LEAVE, x86asm.PUSHF, x86asm.POPF:
		return true
	}
	if r, ok := in.Args[0].(x86asm.Reg); ok && (r == x86asm.RSP || r == x86asm.ESP || r == x86asm.SP) {
		return in.Op != x86asm.CMP && in.Op != x86asm.TEST
	}
	return false
}
