package dispatch

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"
)

// A Trampoline runs a function's original body whatever its prologue holds:
// a relocated copy of the instructions any patch may overwrite, then a jump
// back to the first instruction no patch touches (docs/design.md section 6).
//
// Punning keeps every instruction after the one at the patch point, so the
// copy is short: the first instruction, and the second when a tactic may
// move the patch point past the first. The function's code is never
// rewritten for it: Original's stub calls the trampoline, so a stack-growth
// restart that re-enters the patched entry carries the stub's return
// address, and the dispatcher routes it back here.
type Trampoline struct {
	Name  string
	Entry uintptr
	Addr  uintptr
	Code  []byte
	// Cut is where the trampoline jumps back into the function.
	Cut int
	// NilChecks lists the pointer registers tested before the copy: a
	// copied instruction dereferences them, and a nil one must panic in
	// Go code rather than fault in the relay page.
	NilChecks []x86asm.Reg

	page      *relayPage
	installed bool
}

// trampolineSize bounds the copy: two nil checks (test; jz rel32), two
// instructions widened to rel32 forms (or up to maxNopRun nops and one),
// and the jump back.
const trampolineSize = 2*(3+6) + 2*maxInstLen + 5

// PlanTrampoline plans f's trampoline and reserves its bytes in a relay
// page within reach. It refuses what cannot run from a copy: a call (its
// return address would lie outside Go code, which the runtime's unwinder
// rejects), and a memory access that may fault and cannot be nil-checked
// first (a fault outside Go code crashes instead of panicking).
func (pl *Planner) PlanTrampoline(f Func) (*Trampoline, error) {
	if f.Size <= 0 || f.Size > len(f.Bytes) {
		return nil, refuse(f, ReasonEmpty, fmt.Sprintf("no code: size %d of %d bytes", f.Size, len(f.Bytes)))
	}
	pro, err := decodeAll(f, pl.IsMorestack)
	if err != nil {
		return nil, err
	}
	// Copy the first instruction, and the second if a tactic may patch it;
	// after a run of leading nops, the nops and the instruction after them.
	n := 1
	if len(pro.insts) > 1 && movablePast(pro.insts[0].Inst, f.Bytes[0]) {
		n = 2
		if f.Bytes[0] == 0x90 {
			n = pro.nopRun() + 1
		}
	}
	n = min(n, len(pro.insts))
	cut := pro.insts[n-1].off + pro.insts[n-1].Len
	t := &Trampoline{Name: f.Name, Entry: f.Entry, Cut: cut}
	for i, in := range pro.insts[:n] {
		if err := copyable(f, in, cut); err != nil {
			return nil, err
		}
		regs, err := nilChecks(f, pro.insts[:n], i)
		if err != nil {
			return nil, err
		}
		for _, r := range regs {
			if !slices.Contains(t.NilChecks, r) {
				t.NilChecks = append(t.NilChecks, r)
			}
		}
	}
	if len(t.NilChecks) > 0 && pl.NilFault == 0 {
		return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the copied instructions dereference %v, and no nil-fault stub is known", t.NilChecks))
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	// Any address within reach of the function will do: ask for rel32
	// from the jump back, with nothing pinned.
	back := f.Entry + uintptr(cut)
	addr, pg, ok := pl.relay.inPages(back, Pins{}, trampolineSize)
	if !ok {
		if addr, pg, err = pl.relay.fresh(back, Pins{}, trampolineSize); err != nil {
			return nil, refuse(f, ReasonNoWindow, "trampoline: "+err.Error())
		}
	}
	t.Addr, t.page = addr, pg
	if t.Code, err = relocate(f, pro.insts[:n], addr, t.NilChecks, pl.NilFault); err != nil {
		return nil, err
	}
	return t, nil
}

// movablePast mirrors candidates: the tactics that move the patch point
// past the first instruction.
func movablePast(in x86asm.Inst, first byte) bool {
	return in.Len == 1 && (first == 0x90 || first == 0x55) || writesScratchOnly(in)
}

// copyable reports whether an instruction may run from the trampoline, as
// far as its kind goes; nilChecks judges its memory operands.
func copyable(f Func, in inst, cut int) error {
	if isCall(in.Op) {
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) is a call: its return address would be outside Go code", in.off, in.Inst))
	}
	if t, ok := branchTarget(in); ok && t >= 0 && t < cut {
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the branch at +%d jumps into the copied instructions", in.off))
	}
	return nil
}

// nilChecks returns the registers the copied instruction insts[i]
// dereferences and that may be nil: the base registers of its memory
// operands other than RIP, the stack and g. Each gets a nil check before
// the copy, which is only right when no copied instruction before it
// writes the register. It refuses what it cannot check: an index register
// next to a pointer base, a copied write to the register first.
func nilChecks(f Func, insts []inst, i int) ([]x86asm.Reg, error) {
	in := insts[i]
	if !accesses(in.Op) {
		return nil, nil
	}
	var regs []x86asm.Reg
	for _, a := range in.Args {
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		switch {
		case m.Base == x86asm.RIP || m.Base == x86asm.RSP || m.Base == x86asm.RBP || m.Base == x86asm.R14:
			// Globals, the stack and g: never nil.
			continue
		case m.Segment == x86asm.FS && m.Base == 0 && m.Index == 0:
			// The thread's TLS slot of g (MOVQ (TLS), R14 in assembly
			// functions): always mapped.
			continue
		case m.Segment != 0 || m.Base < x86asm.RAX || m.Base > x86asm.R15:
			return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) reads memory that may fault outside Go code, through an address it cannot nil-check", in.off, in.Inst))
		case m.Index != 0:
			return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) reads memory through %v and an index: a nil check of the base alone cannot tell whether it faults", in.off, in.Inst, m.Base))
		}
		for _, prev := range insts[:i] {
			if mayWrite(prev.Inst, m.Base) {
				return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) dereferences %v, which the copied %v writes first: no nil check can come before both", in.off, in.Inst, m.Base, prev.Inst))
			}
		}
		regs = append(regs, m.Base)
	}
	return regs, nil
}

// mayWrite reports whether in may write the 64-bit register r: it names r
// (or a part of it) other than as a compare's operand, or it is one of the
// instructions with implicit register outputs.
func mayWrite(in x86asm.Inst, r x86asm.Reg) bool {
	switch in.Op {
	case x86asm.NOP, x86asm.PUSH:
		return false
	case x86asm.CMP, x86asm.TEST:
		return false
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.CWD, x86asm.CDQ, x86asm.CQO,
		x86asm.CPUID, x86asm.RDTSC, x86asm.RDTSCP, x86asm.XCHG, x86asm.CMPXCHG, x86asm.XADD,
		x86asm.LODSB, x86asm.LODSQ, x86asm.STOSB, x86asm.STOSQ, x86asm.MOVSB, x86asm.MOVSQ,
		x86asm.SYSCALL, x86asm.POP:
		return true
	}
	for _, a := range in.Args {
		if reg, ok := a.(x86asm.Reg); ok && Family(reg) == r {
			return true
		}
	}
	return false
}

// Family maps a general register of any width to its 64-bit name, and
// any other register to itself.
func Family(r x86asm.Reg) x86asm.Reg {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return r
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return x86asm.RAX + (r - x86asm.EAX)
	case r >= x86asm.AX && r <= x86asm.R15W:
		return x86asm.RAX + (r - x86asm.AX)
	case r >= x86asm.AL && r <= x86asm.BL:
		return x86asm.RAX + (r - x86asm.AL)
	case r >= x86asm.AH && r <= x86asm.BH:
		return x86asm.RAX + (r - x86asm.AH)
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return x86asm.RSP + (r - x86asm.SPB)
	}
	return r
}

// nilCheck appends test r, r; jz rel32 to fault, the Go assembly stub
// that faults at a Go PC with the stack as at the function's entry, so the
// caller gets an ordinary nil-dereference panic.
func nilCheck(code []byte, at uintptr, r x86asm.Reg, fault uintptr) ([]byte, bool) {
	n := byte(r - x86asm.RAX)
	rex := byte(0x48)
	if n >= 8 {
		rex |= 0x05 // REX.R and REX.B
	}
	code = append(code, rex, 0x85, 0xC0|(n&7)<<3|n&7, 0x0F, 0x84, 0, 0, 0, 0)
	d := int64(fault) - int64(at+uintptr(len(code)))
	if d < math.MinInt32 || d > math.MaxInt32 {
		return nil, false
	}
	putRel(code[len(code)-4:], int32(d))
	return code, true
}

// relocate copies insts to addr, re-encoding what depends on its address:
// RIP-relative displacements, and branches, widened to rel32. It ends
// with jmp rel32 back to the first instruction not copied, unless the copy
// ends in an unconditional jump or return.
func relocate(f Func, insts []inst, addr uintptr, checks []x86asm.Reg, fault uintptr) ([]byte, error) {
	var code []byte
	at := func() uintptr { return addr + uintptr(len(code)) }
	for _, r := range checks {
		var ok bool
		if code, ok = nilCheck(code, addr, r, fault); !ok {
			return nil, refuse(f, ReasonTrampoline, "trampoline out of rel32 reach of the nil-fault stub")
		}
	}
	rel32 := func(from, to uintptr) (int32, bool) {
		d := int64(to) - int64(from)
		return int32(d), d >= math.MinInt32 && d <= math.MaxInt32
	}
	for _, in := range insts {
		b := f.Bytes[in.off : in.off+in.Len]
		src := f.Entry + uintptr(in.off)
		if target, ok := branchTarget(in); ok {
			to := f.Entry + uintptr(target)
			switch {
			case in.Op == x86asm.JMP:
				code = append(code, 0xE9, 0, 0, 0, 0)
			case b[0] >= 0x70 && b[0] <= 0x7F: // jcc rel8
				code = append(code, 0x0F, 0x80|b[0]&0xF, 0, 0, 0, 0)
			case b[0] == 0x0F && b[1] >= 0x80 && b[1] <= 0x8F: // jcc rel32
				code = append(code, 0x0F, b[1], 0, 0, 0, 0)
			default:
				return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("cannot relocate the branch at +%d (%v)", in.off, in.Inst))
			}
			r, ok := rel32(at(), to)
			if !ok {
				return nil, refuse(f, ReasonTrampoline, "trampoline out of rel32 reach")
			}
			putRel(code[len(code)-4:], r)
			continue
		}
		start := len(code)
		code = append(code, b...)
		if in.PCRel == 4 && isRIPRelative(in.Inst) {
			old := int32(binary.LittleEndian.Uint32(b[in.PCRelOff:]))
			r, ok := rel32(at(), src+uintptr(in.Len)+uintptr(int64(old)))
			if !ok {
				return nil, refuse(f, ReasonTrampoline, "RIP-relative operand out of reach of the trampoline")
			}
			putRel(code[start+in.PCRelOff:], r)
		} else if in.PCRel != 0 || hiddenPCRelative(in.Inst) {
			return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("cannot relocate the PC-relative instruction at +%d (%v)", in.off, in.Inst))
		}
	}
	if last := insts[len(insts)-1]; last.Op != x86asm.JMP && last.Op != x86asm.RET {
		code = append(code, 0xE9, 0, 0, 0, 0)
		back := f.Entry + uintptr(last.off+last.Len)
		r, ok := rel32(at(), back)
		if !ok {
			return nil, refuse(f, ReasonTrampoline, "trampoline out of reach of the function")
		}
		putRel(code[len(code)-4:], r)
	}
	return code, nil
}

// hiddenPCRelative reports a memory operand that may be PC-relative
// although x86asm does not say so (no RIP base, no PCRel): a VEX-encoded
// RIP-relative operand, which x86asm reads as an absolute [disp32], and
// an EIP-relative one (prefix 67). Copied elsewhere it would address
// other memory. A moffs operand (an absolute address, no ModRM) looks the
// same as the first and is refused with it; Go emits none.
func hiddenPCRelative(in x86asm.Inst) bool {
	for _, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok && (m.Base == x86asm.EIP || m.Base == 0 && m.Index == 0 && m.Scale == 0 && m.Segment == 0) {
			return true
		}
	}
	return false
}

func isRIPRelative(in x86asm.Inst) bool {
	for _, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
			return true
		}
	}
	return false
}

// Install writes the trampoline into its relay page and serializes every
// core. Nothing leads to it until its caller hands out its address.
// Installing twice is a no-op.
func (t *Trampoline) Install(entry unsafe.Pointer) error {
	if t.installed {
		return nil
	}
	if uintptr(entry) != t.Entry {
		return fmt.Errorf("%s: trampoline planned for %#x, installed at %p", t.Name, t.Entry, entry)
	}
	if t.page.mem == nil {
		return fmt.Errorf("%s: relay page %#x is simulated", t.Name, t.page.addr)
	}
	writeMu.Lock()
	err := writeSite(t.page, t.Addr, t.Code)
	writeMu.Unlock()
	if err != nil {
		return &RefusalError{Func: t.Name, Entry: t.Entry, Reason: ReasonMap, Detail: err.Error(), Err: ErrNoRelay}
	}
	if err := SyncCores(); err != nil {
		return err
	}
	t.installed = true
	return nil
}
