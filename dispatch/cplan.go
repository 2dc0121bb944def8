package dispatch

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard"
)

// Tactics only C functions use: they move the patch point past a frame
// setup that the relay site can undo, which C code compiled without
// alignment often needs to reach an aligned quadword of its own.
const (
	// PastEndbr moves the patch point past endbr64, which has no effect
	// when the landing pad is not checked (Linux user space has no IBT)
	// and stays in place for indirect calls.
	PastEndbr Tactic = iota + PastScratch + 1
	// PastFrame moves the patch point past push rbp; mov rbp,rsp: rbp
	// equals rsp there, so the site's pop rbp undoes both.
	PastFrame
)

// CTactics lists the tactics PlanC tries, in order.
func CTactics() []Tactic {
	return []Tactic{EntryJump, PunnedJump, PrefixedJump, PastNop, PastEndbr, PastPushRBP, PastFrame}
}

func cTacticString(t Tactic) string {
	switch t {
	case PastEndbr:
		return "past-endbr64"
	case PastFrame:
		return "past-frame"
	}
	return fmt.Sprintf("tactic(%d)", uint8(t))
}

// C site layout, from the site:
//
//	[5D]                 pop rbp, when the patch point follows push rbp
//	E8 rel32             call cdispatcher, or FF 15 disp32: call [the slot]
//	41 FF E3             jmp r11        <- the call's return address (Key)
//	<8 bytes>            *switchboard.CRoute, read by cdispatcher
//	[<8 bytes>]          the slot: cdispatcher's address, when rel32 cannot reach it
//
// The site holds its own slot instead of using the page header, so C
// sites need nothing from the page but room, and the jump to the target
// is through R11: the target may be anywhere in the address space.
const cSiteMax = 1 + 6 + 3 + 8 + 8

// CPadding returns how many of the bytes after a C function's code are
// padding a patch may overwrite: the leading run of whole int3, nop and
// multi-byte nop (0F 1F) instructions. Anything else may be code of a
// symbol the table does not list (a stripped object keeps only exported
// symbols), so a patch must not touch it.
func CPadding(pad []byte) int {
	n := 0
	for n < len(pad) {
		switch pad[n] {
		case 0xCC, 0x90:
			n++
			continue
		}
		in, err := decode(pad[n:])
		if err != nil || in.Op != x86asm.NOP || !isLongNop(pad[n:n+in.Len]) {
			break
		}
		n += in.Len
	}
	return n
}

// isLongNop reports whether b is 0F 1F /0 behind operand-size or segment
// prefixes, the multi-byte nops assemblers pad with.
func isLongNop(b []byte) bool {
	for len(b) > 0 && (b[0] == 0x66 || b[0] == 0x2E) {
		b = b[1:]
	}
	return len(b) >= 3 && b[0] == 0x0F && b[1] == 0x1F
}

// CPatch is the patch of one C function. Its site calls cdispatcher and
// carries the route pointer; it never enters the Go dispatcher's table.
type CPatch struct {
	p *Patch
}

// Patch returns the underlying patch, for Verify and reports.
func (c *CPatch) Patch() *Patch { return c.p }

// PlanC chooses a tactic and a site for the C function f (System V ABI),
// reserving the site. f.Bytes must hold the function's code (f.Size bytes)
// followed only by padding that CPadding accepts: the patch's aligned
// quadword must lie inside them. It reads f.Bytes only.
func (pl *Planner) PlanC(f Func) (*CPatch, error) {
	if f.Size <= 0 || f.Size > len(f.Bytes) {
		return nil, refuse(f, ReasonEmpty, fmt.Sprintf("no code: size %d of %d bytes", f.Size, len(f.Bytes)))
	}
	pro, err := decodeAll(f, nil)
	if err != nil {
		return nil, err
	}
	// C has no stack-growth restart: every branch to the entry is a loop.
	pro.restart = -1
	cands, err := pro.cCandidates()
	if err != nil {
		return nil, err
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var why []string
	for _, c := range cands {
		t, pg, ok := pl.relay.inPages(c.jmpEnd(f.Entry), c.pins, cSiteMax)
		if !ok {
			var err error
			if t, pg, err = pl.relay.fresh(c.jmpEnd(f.Entry), c.pins, cSiteMax); err != nil {
				why = append(why, fmt.Sprintf("%v (%d prefixes at +%d): %v", c.tactic, len(c.prefix), c.offset, err))
				continue
			}
		}
		return &CPatch{pl.finishC(f, c, t, pg)}, nil
	}
	return nil, refuse(f, ReasonNoWindow, strings.Join(why, "; "))
}

// cCandidates lists the C patches that keep every interior boundary: at
// the entry, then past each instruction of a leading endbr64 / nop /
// push rbp / mov rbp,rsp sequence. R12 and R13 are callee-saved in C, so
// there is no past-scratch.
func (p *prologue) cCandidates() ([]candidate, error) {
	points := []point{{0, 0}}
	pushed := false
walk:
	for _, in := range p.insts[:len(p.insts)-1] {
		b := p.fn.Bytes[in.off : in.off+in.Len]
		var t Tactic
		switch {
		case pushed && in.Op == x86asm.MOV && in.Args[0] == x86asm.RBP && in.Args[1] == x86asm.RSP:
			t = PastFrame
		case pushed:
		case in.Len == 1 && b[0] == 0x90:
			t = PastNop
		case in.Len == 4 && string(b) == endbr64:
			t = PastEndbr
		case in.Len == 1 && b[0] == 0x55:
			t, pushed = PastPushRBP, true
		}
		if t == 0 {
			break walk
		}
		points = append(points, point{in.off + in.Len, t})
		if t == PastFrame {
			break walk
		}
	}
	return p.fitAll(SiteMode, p.fn.Entry, points)
}

// finishC builds the patch and the C site once the site address is known.
func (pl *Planner) finishC(f Func, c candidate, site uintptr, pg *relayPage) *Patch {
	rel := int32(int64(site) - int64(c.jmpEnd(f.Entry)))
	p := &Patch{
		Name: f.Name, Entry: f.Entry, Mode: SiteMode, Tactic: c.tactic,
		Offset: c.offset, Bytes: c.bytes(rel), Pins: c.pins, Site: site, page: pg,
	}
	var code []byte
	if c.tactic == PastPushRBP || c.tactic == PastFrame {
		code = append(code, 0x5D) // pop rbp: undo the prologue's push
	}
	at := site + uintptr(len(code))
	indirect := false
	if d := int64(pl.cdispatch()) - int64(at+5); d >= math.MinInt32 && d <= math.MaxInt32 {
		code = append(code, 0xE8, 0, 0, 0, 0)
		putRel(code[len(code)-4:], int32(d))
	} else {
		// call [rip+11]: the slot after jmp r11 and the route pointer.
		code = append(code, 0xFF, 0x15, 3+8, 0, 0, 0)
		indirect = true
	}
	p.Key = site + uintptr(len(code))
	code = append(code, 0x41, 0xFF, 0xE3) // jmp r11
	code = append(code, make([]byte, 8)...)
	if indirect {
		code = binary.LittleEndian.AppendUint64(code, uint64(pl.cdispatch()))
	}
	p.SiteCode = code
	p.setQuad(f)
	return p
}

// cdispatch is the C dispatcher the planner's sites call. Its address
// only decides between the rel32 and the slot form of the call.
func (pl *Planner) cdispatch() uintptr { return switchboard.CDispatcherPC() }

// routeOff is where the route pointer lies in the site's code.
func (c *CPatch) routeOff() uintptr { return c.p.Key - c.p.Site + switchboard.CSiteRouteOffset }

// Install writes the C site with route's address after its jmp r11, then
// serializes every core, so the site is complete everywhere before any
// prologue leads to it. The caller keeps route reachable for the life of
// the process. Installing twice is a no-op.
func (c *CPatch) Install(route *switchboard.CRoute) error {
	p := c.p
	if p.installed {
		return nil
	}
	if p.page.mem == nil {
		return fmt.Errorf("%s: relay page %#x is simulated", p.Name, p.page.addr)
	}
	code := append([]byte(nil), p.SiteCode...)
	binary.LittleEndian.PutUint64(code[c.routeOff():], uint64(uintptr(unsafe.Pointer(route))))
	writeMu.Lock()
	err := writeSite(p.page, p.Site, code)
	writeMu.Unlock()
	if err != nil {
		return refuseErr(p, ReasonMap, err)
	}
	if err := SyncCores(); err != nil {
		return err
	}
	p.installed = true
	return nil
}

// Apply writes the prologue patch (see Patch.Apply).
func (c *CPatch) Apply(entry unsafe.Pointer) (written bool, err error) {
	if !c.p.installed {
		return false, fmt.Errorf("%s: site not installed", c.p.Name)
	}
	return c.p.swap(entry, c.p.orig, c.p.patched)
}

// Restore puts the original quadword back (see Patch.Restore).
func (c *CPatch) Restore(entry unsafe.Pointer) (written bool, err error) {
	return c.p.Restore(entry)
}

// PlanCTrampoline plans the trampoline of a C function patched by cp: a
// relocated copy of the instructions from the entry to the end of the one
// at the patch point (every later instruction the patch covers is kept
// by punning), then a jump back. It is callable from C with the
// function's own signature.
func (pl *Planner) PlanCTrampoline(f Func, cp *CPatch) (*Trampoline, error) {
	pro, err := decodeAll(f, nil)
	if err != nil {
		return nil, err
	}
	k, ok := pro.at(cp.p.Offset)
	if !ok {
		return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the patch point +%d is no instruction boundary", cp.p.Offset))
	}
	insts := pro.insts[:k+1]
	cut := insts[k].off + insts[k].Len
	for _, in := range insts {
		if isCall(in.Op) {
			return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the instruction at +%d (%v) is a call", in.off, in.Inst))
		}
		if t, ok := branchTarget(in); ok && t >= 0 && t < cut {
			return nil, refuse(f, ReasonTrampoline, fmt.Sprintf("the branch at +%d jumps into the copied instructions", in.off))
		}
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	back := f.Entry + uintptr(cut)
	addr, pg, ok := pl.relay.inPages(back, Pins{}, trampolineSize+maxInstLen*3)
	if !ok {
		if addr, pg, err = pl.relay.fresh(back, Pins{}, trampolineSize+maxInstLen*3); err != nil {
			return nil, refuse(f, ReasonNoWindow, "trampoline: "+err.Error())
		}
	}
	t := &Trampoline{Name: f.Name, Entry: f.Entry, Addr: addr, Cut: cut, page: pg}
	if t.Code, err = relocate(f, insts, addr, nil, 0); err != nil {
		return nil, err
	}
	return t, nil
}

// endbr64 opens C functions built with -fcf-protection (gcc's default on
// many distributions). x86asm does not know it.
const endbr64 = "\xf3\x0f\x1e\xfa"
