package dispatch

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"
)

// A Trampoline runs a function's original body whatever its prologue holds:
// a relocated copy of the instructions any patch may overwrite, then a jump
// back to the first instruction no patch touches (docs/design.md section 6).
//
// Punning keeps every instruction after the one at the patch point, so the
// copy is short: the first instruction, and the second when a tactic may
// move the patch point past the first. A function with a stack check also
// has its stack-growth restart (the tail's JMP entry) redirected to the
// trampoline, or a call through the trampoline that grows the stack would
// restart at the patched entry and run the replacement. The trampoline is
// semantically the entry, so that redirect stays for good.
type Trampoline struct {
	Name  string
	Entry uintptr
	Addr  uintptr
	Code  []byte
	// Cut is where the trampoline jumps back into the function.
	Cut int
	// Restart is the offset of the tail's JMP entry (-1: none);
	// redirect holds the quadword writes that retarget it, in order.
	Restart  int
	redirect []quadWrite

	page      *relayPage
	installed bool
}

// trampolineSize bounds the copy: two instructions widened to rel32 forms
// plus the jump back.
const trampolineSize = 2*maxInstLen + 5

// PlanTrampoline plans f's trampoline and reserves its bytes in a relay
// page within reach. It refuses what cannot be copied safely: a call (its
// return address would lie outside Go code, which the runtime's unwinder
// rejects), a memory access that may fault (a nil dereference outside Go
// code crashes instead of panicking), and a restart jump it cannot widen
// atomically.
func (pl *Planner) PlanTrampoline(f Func) (*Trampoline, error) {
	if f.Size <= 0 || f.Size > len(f.Bytes) {
		return nil, refuse(f, ReasonEmpty, fmt.Sprintf("no code: size %d of %d bytes", f.Size, len(f.Bytes)))
	}
	pro, err := decodeAll(f, pl.IsMorestack)
	if err != nil {
		return nil, err
	}
	// Copy the first instruction, and the second if a tactic may patch it.
	n := 1
	if len(pro.insts) > 1 && movablePast(pro.insts[0].Inst, f.Bytes[0]) {
		n = 2
	}
	n = min(n, len(pro.insts))
	cut := pro.insts[n-1].off + pro.insts[n-1].Len
	t := &Trampoline{Name: f.Name, Entry: f.Entry, Cut: cut, Restart: pro.restart}
	for _, in := range pro.insts[:n] {
		if err := copyable(f, in, cut); err != nil {
			return nil, err
		}
	}
	if t.Restart >= 0 {
		if err := t.planRestart(f); err != nil {
			return nil, err
		}
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
	if t.Code, err = relocate(f, pro.insts[:n], addr); err != nil {
		return nil, err
	}
	if t.Restart >= 0 {
		if err := t.planRedirect(f, addr); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// movablePast mirrors candidates: the tactics that move the patch point
// past the first instruction.
func movablePast(in x86asm.Inst, first byte) bool {
	return in.Len == 1 && (first == 0x90 || first == 0x55) || writesScratchOnly(in)
}

// copyable reports whether an instruction may run from the trampoline.
func copyable(f Func, in inst, cut int) error {
	if isCall(in.Op) {
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) is a call: its return address would be outside Go code", in.off, in.Inst))
	}
	if t, ok := branchTarget(in); ok && t >= 0 && t < cut {
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the branch at +%d jumps into the copied instructions", in.off))
	}
	for _, a := range in.Args {
		m, ok := a.(x86asm.Mem)
		if !ok || in.Op == x86asm.LEA || in.Op == x86asm.NOP {
			continue
		}
		switch m.Base {
		case x86asm.RIP, x86asm.RSP, x86asm.RBP, x86asm.R14:
			// Globals, the stack and g: never nil.
		default:
			return refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) reads memory that may fault outside Go code", in.off, in.Inst))
		}
	}
	return nil
}

// quadWrite is one atomic store of an aligned quadword of code.
type quadWrite struct {
	addr     uintptr
	old, new [8]byte
}

// planRestart checks that the tail's JMP entry can become jmp rel32 to the
// trampoline: it is already 5 bytes in one aligned quadword, or it is the
// function's last instruction with padding after it to widen into.
func (t *Trampoline) planRestart(f Func) error {
	r := t.Restart
	in, err := decode(f.Bytes[r:f.Size])
	if err != nil {
		return refuse(f, ReasonTrampoline, fmt.Sprintf("restart jump at +%d: %v", r, err))
	}
	q := (f.Entry + uintptr(r)) &^ 7
	switch {
	case r+5 > len(f.Bytes) || (f.Entry+uintptr(r+5)+7)&^7 > f.Entry+uintptr(len(f.Bytes)):
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the restart jump at +%d has no room for jmp rel32", r))
	case in.Len == 5 && f.Entry+uintptr(r+5) <= q+8:
	case in.Len == 2 && r+2 == f.Size && (f.Entry+uintptr(r))&7 != 7:
		// Both bytes of the old jmp share the quadword written last, so
		// every earlier write touches padding only.
	default:
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the restart jump at +%d (%d bytes) cannot become jmp rel32 atomically", r, in.Len))
	}
	return nil
}

// planRedirect lays out the writes that make the restart jump go to addr.
// When the new jmp rel32 crosses into the next aligned quadword, that part
// is padding (planRestart checked): it is written first, so that the store
// of the opcode's quadword completes the instruction at once. A thread at
// the jump sees the old 2-byte jmp or the whole new one.
func (t *Trampoline) planRedirect(f Func, addr uintptr) error {
	r := f.Entry + uintptr(t.Restart)
	// The trampoline was placed within reach of the jump back; the
	// restart lies further into the function and may not reach it.
	d := int64(addr) - int64(r+5)
	if d < math.MinInt32 || d > math.MaxInt32 {
		return refuse(f, ReasonTrampoline, fmt.Sprintf("the trampoline at %#x is out of rel32 reach of the restart jump at +%d", addr, t.Restart))
	}
	img := append([]byte(nil), f.Bytes...)
	img[t.Restart] = 0xE9
	putRel(img[t.Restart+1:], int32(d))
	first := r &^ 7
	for q := (r + 4) &^ 7; q >= first; q -= 8 {
		w := quadWrite{addr: q}
		copy(w.old[:], f.Bytes[q-f.Entry:])
		copy(w.new[:], img[q-f.Entry:])
		t.redirect = append(t.redirect, w)
	}
	return nil
}

// relocate copies insts to addr, re-encoding what depends on its address:
// RIP-relative displacements, and branches, widened to rel32. It ends
// with jmp rel32 back to the first instruction not copied, unless the copy
// ends in an unconditional jump or return.
func relocate(f Func, insts []inst, addr uintptr) ([]byte, error) {
	var code []byte
	at := func() uintptr { return addr + uintptr(len(code)) }
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
		} else if in.PCRel != 0 {
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

func isRIPRelative(in x86asm.Inst) bool {
	for _, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
			return true
		}
	}
	return false
}

// Install writes the trampoline into its relay page, serializes every core,
// then redirects the stack-growth restart to it with one atomic store.
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
	err := writeSite(unsafe.Slice((*byte)(t.page.mem), pageSize), t.page.addr, t.Addr, t.Code)
	writeMu.Unlock()
	// The trampoline is unreachable until the redirect, so rewriting it
	// on a retry is harmless.
	if err != nil {
		return &RefusalError{Func: t.Name, Entry: t.Entry, Reason: ReasonMap, Detail: err.Error(), Err: ErrNoRelay}
	}
	if err := SyncCores(); err != nil {
		return err
	}
	// A retry after a failure resumes: writes already in force count as
	// done (swapQuad).
	for _, w := range t.redirect {
		if _, err := swapQuad(unsafe.Add(entry, int(w.addr-t.Entry)), w.old, w.new); err != nil {
			return err
		}
	}
	t.installed = true
	return nil
}
