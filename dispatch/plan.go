package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"
)

// Patch is everything needed to redirect one function in one mode: the
// bytes for the prologue and the relay site they jump to. Plan makes it;
// in a live process Install and Apply write it.
type Patch struct {
	Name   string
	Entry  uintptr
	Mode   Mode
	Tactic Tactic
	// Offset is where Bytes go, from Entry.
	Offset int
	// Bytes is the prologue patch: prefixes, E9 or E8, rel32.
	Bytes []byte
	// Pins are the rel32 bytes the original instructions fixed.
	Pins Pins
	// Site is the relay site (site mode) or relay stub (call mode) the
	// patch branches to; SiteCode is what is written there.
	Site     uintptr
	SiteCode []byte
	// RouteAt is the offset in SiteCode of the 8 bytes that carry the
	// *switchboard.Route: after the site's jmp r12 in site mode, the
	// immediate of the stub's movabs r13 in call mode. Plan leaves them
	// zero; Install writes the route there. -1 for a slot, whose route
	// lies in its page's data page, at Key+switchboard.SlotRouteOffset.
	RouteAt int
	// Key is the return address the dispatcher sees: in the site for site
	// mode, Entry+Offset+len(Bytes) for call mode.
	Key uintptr
	// Evict is the second jump and its stub, for EvictJump; nil otherwise.
	Evict *Eviction

	// quad is the aligned quadword holding the patch; orig and patched
	// are its two contents. A wide patch (an eviction past the quadword)
	// also changes the next quadword, origHi to patchedHi: the two form
	// one aligned octoword, written with one CMPXCHG16B.
	quad              uintptr
	orig, patched     [8]byte
	wide              bool
	origHi, patchedHi [8]byte
	page              *relayPage
	installed         bool
	// slot: the site is a slot of a slot page, written with the page.
	slot bool
}

// Quad returns the aligned quadword the patch is written into, with its
// original and patched contents; for a wide patch (Wide), the first of
// its two quadwords.
func (p *Patch) Quad() (addr uintptr, orig, patched [8]byte) { return p.quad, p.orig, p.patched }

// Wide reports whether the patch spans an aligned octoword: 16 bytes at
// Quad's address, written with one CMPXCHG16B.
func (p *Patch) Wide() bool { return p.wide }

// Planner plans patches against one address space. Its methods are safe for
// concurrent use.
type Planner struct {
	mu       sync.Mutex
	relay    relay
	dispatch uintptr // site-mode dispatcher entry
	callDisp uintptr // call-mode dispatcher entry

	// IsMorestack, when set, tells whether an address is one of
	// runtime.morestack*, to recognize stack-growth tails by their call.
	IsMorestack func(pc uintptr) bool
	// NilFault, when set, is the Go assembly stub a trampoline's nil
	// check jumps to (switchboard.NilFaultPC): without it, trampolines
	// refuse copied instructions that dereference a pointer register.
	NilFault uintptr
	// SlotDispatcher, when set, is the dispatcher entry slots call
	// (switchboard.SlotDispatcherPC): site-mode sites then go into slot
	// pages where their pins allow (see slotCode).
	SlotDispatcher uintptr
}

// NewPlanner returns a planner that carves relay pages out of space and
// points sites at the two dispatcher entries.
func NewPlanner(space Space, dispatcher, callDispatcher uintptr) *Planner {
	return &Planner{relay: relay{space: space}, dispatch: dispatcher, callDisp: callDispatcher}
}

// Plan chooses a tactic and a site for f in the given mode, reserving the
// site. It reads f.Code and f's padding only; it writes nothing to f. In a
// live space the site bytes go into the relay page when Install runs.
func (pl *Planner) Plan(f Func, mode Mode) (*Patch, error) {
	if f.Size <= 0 || f.Size > len(f.Bytes) {
		return nil, refuse(f, ReasonEmpty, fmt.Sprintf("no code: size %d of %d bytes", f.Size, len(f.Bytes)))
	}
	pro, err := decodeAll(f, pl.IsMorestack)
	if err != nil {
		return nil, err
	}
	// Candidates copy what they keep of the instructions.
	defer pro.release()
	cands, err := pro.candidates(mode, f.Entry)
	if err != nil {
		// No other tactic keeps the boundaries: eviction may.
		if cands = pro.evictions(mode, f.Entry); len(cands) == 0 {
			return nil, err
		}
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	// Candidates go in order of preference (entry jump, prefixes, moved
	// patch point, then evictions); each takes a page it already has
	// before a new one.
	var why []string
	for i := 0; i < len(cands); i++ {
		c := cands[i]
		if p, ok := pl.trySlot(f, c, mode); ok {
			return p, nil
		}
		p, ok, err := pl.tryExisting(f, c, mode)
		if ok {
			return p, nil
		}
		if err == nil {
			if p, err = pl.tryNew(f, c, mode); err == nil {
				return p, nil
			}
		}
		why = append(why, err.Error())
		if i == len(cands)-1 && c.tactic != EvictJump {
			cands = append(cands, pro.evictions(mode, f.Entry)...)
		}
	}
	return nil, refuse(f, ReasonNoWindow, strings.Join(why, "; "))
}

// trySlot places c's site in a slot of a slot page the planner has, or
// else of a new one.
func (pl *Planner) trySlot(f Func, c candidate, mode Mode) (*Patch, bool) {
	if pl.SlotDispatcher == 0 || !slotted(c, mode) {
		return nil, false
	}
	jmpEnd, pop := c.jmpEnd(f.Entry), c.tactic == PastPushRBP
	t, pg, ok := pl.relay.inSlots(jmpEnd, c.pins, pop)
	if !ok {
		if _, err := pl.relay.freshSlots(jmpEnd, c.pins, pl.SlotDispatcher, pop); err != nil {
			return nil, false
		}
		if t, pg, ok = pl.relay.inSlots(jmpEnd, c.pins, pop); !ok {
			return nil, false
		}
	}
	p := pl.finish(f, c, mode, t, pg)
	s := t
	if !pop {
		s--
	}
	code := pg.slotCode(s, pl.SlotDispatcher)
	p.SiteCode, p.Key, p.RouteAt, p.slot = code[t-s:], s+6, -1, true
	if pg.far {
		p.Key++
	}
	return p, true
}

// siteSize is the most bytes a site of this candidate can take, with the
// 8-byte route pointer.
func siteSize(c candidate, mode Mode) int {
	if mode == CallMode {
		return 10 + 6 // movabs r13, route; jmp [rip+hdr]
	}
	n := 6 + 3 + 8 // call [rip+hdr]; jmp r12; route
	if c.tactic == PastPushRBP {
		n++ // pop rbp
	}
	return n
}

func (c candidate) jmpEnd(entry uintptr) uintptr {
	return entry + uintptr(c.offset+c.len())
}

// tryExisting places c's site in a page the planner has. An error means
// the site fitted but the eviction stub did not (the site is given back).
func (pl *Planner) tryExisting(f Func, c candidate, mode Mode) (*Patch, bool, error) {
	t, pg, size, err := pl.placeSite(c, mode, func(size int) (uintptr, *relayPage, error) {
		if t, pg, ok := pl.relay.inPages(c.jmpEnd(f.Entry), c.pins, size); ok {
			return t, pg, nil
		}
		return 0, nil, errNoRoom
	})
	if err != nil {
		return nil, false, nil
	}
	ev, err := pl.evictFor(f, c, t, pg, size)
	if err != nil {
		return nil, false, err
	}
	p := pl.finish(f, c, mode, t, pg)
	p.setEviction(f, ev)
	return p, true, nil
}

func (pl *Planner) tryNew(f Func, c candidate, mode Mode) (*Patch, error) {
	t, pg, size, err := pl.placeSite(c, mode, func(size int) (uintptr, *relayPage, error) {
		return pl.relay.fresh(c.jmpEnd(f.Entry), c.pins, size)
	})
	if err != nil {
		return nil, fmt.Errorf("%v (%d prefixes at +%d): %w", c.tactic, len(c.prefix), c.offset, err)
	}
	ev, err := pl.evictFor(f, c, t, pg, size)
	if err != nil {
		return nil, err
	}
	p := pl.finish(f, c, mode, t, pg)
	p.setEviction(f, ev)
	return p, nil
}

// errNoRoom: no page the planner has holds room for the site.
var errNoRoom = errors.New("no room in the relay pages")

// placeSite finds room for c's site with search, in its long form first
// (call [rip+hdr], which any address can use), and where that finds none,
// in its short form (call rel32, a byte less), kept only at an address
// that reaches the dispatcher. A fully pinned rel32 allows one site
// address, and one byte can decide whether the site fits its page. It
// returns the site, its page and the bytes taken there.
func (pl *Planner) placeSite(c candidate, mode Mode, search func(size int) (uintptr, *relayPage, error)) (uintptr, *relayPage, int, error) {
	size := siteSize(c, mode)
	t, pg, err := search(size)
	if err == nil || mode != SiteMode {
		return t, pg, size, err
	}
	short := size - 1
	t2, pg2, err2 := search(short)
	if err2 != nil {
		return 0, nil, 0, err
	}
	if !pl.callReaches(c, t2) {
		pg2.release(int(t2-pg2.addr), short)
		return 0, nil, 0, err
	}
	return t2, pg2, short, nil
}

// callReaches reports whether a site of c at site reaches the dispatcher
// with call rel32, as finish then writes it.
func (pl *Planner) callReaches(c candidate, site uintptr) bool {
	at := site
	if c.tactic == PastPushRBP {
		at++ // pop rbp comes first
	}
	d := int64(pl.dispatch) - int64(at+5)
	return d >= math.MinInt32 && d <= math.MaxInt32
}

// evictFor places the eviction stub of an EvictJump candidate whose site
// is at t, size bytes, giving the site back if it fails; nil for other
// tactics.
func (pl *Planner) evictFor(f Func, c candidate, t uintptr, pg *relayPage, size int) (*Eviction, error) {
	if len(c.evs) == 0 {
		return nil, nil
	}
	ev, err := pl.placeEvictions(f, c, int32(int64(t)-int64(c.jmpEnd(f.Entry))))
	if err != nil {
		pg.release(int(t-pg.addr), size)
		return nil, fmt.Errorf("%v (%d prefixes at +%d): %w", c.tactic, len(c.prefix), c.offset, err)
	}
	return ev, nil
}

// setEviction adds the second jump to the patched quadword.
func (p *Patch) setEviction(f Func, ev *Eviction) {
	if ev == nil {
		return
	}
	p.Evict = ev
	for ; ev != nil; ev = ev.Next {
		if !p.wide && f.Entry+uintptr(ev.Offset+len(ev.Jump)) > p.quad+8 {
			p.wide = true
			copy(p.origHi[:], f.Bytes[p.quad+8-f.Entry:])
			p.patchedHi = p.origHi
		}
		for i, b := range ev.Jump {
			if k := f.Entry + uintptr(ev.Offset+i) - p.quad; k < 8 {
				p.patched[k] = b
			} else {
				p.patchedHi[k-8] = b
			}
		}
	}
}

// finish builds the patch and site bytes once the site address is known.
func (pl *Planner) finish(f Func, c candidate, mode Mode, site uintptr, pg *relayPage) *Patch {
	rel := int32(int64(site) - int64(c.jmpEnd(f.Entry)))
	p := &Patch{
		Name: f.Name, Entry: f.Entry, Mode: mode, Tactic: c.tactic,
		Offset: c.offset, Bytes: c.bytes(rel), Pins: c.pins, Site: site, page: pg,
	}
	var code []byte
	if mode == SiteMode {
		if c.tactic == PastPushRBP {
			code = append(code, 0x5D) // pop rbp: undo the prologue's push
		}
		code = pl.branch(code, site, 0xE8, pl.dispatch, 0)
		p.Key = site + uintptr(len(code))
		code = append(code, 0x41, 0xFF, 0xE4) // jmp r12
		p.RouteAt = len(code)
		code = append(code, make([]byte, 8)...)
	} else {
		code = append(code, 0x49, 0xBD) // movabs r13, imm64
		p.RouteAt = len(code)
		code = append(code, make([]byte, 8)...)
		code = pl.branch(code, site, 0xE9, pl.callDisp, 8)
		p.Key = c.jmpEnd(f.Entry)
	}
	p.SiteCode = code
	p.setQuad(f)
	return p
}

// setQuad finds the aligned quadword the patch is written into and its two
// contents. Candidates keep it inside the function's own bytes.
func (p *Patch) setQuad(f Func) {
	p.quad = (f.Entry + uintptr(p.Offset)) &^ 7
	copy(p.orig[:], f.Bytes[p.quad-f.Entry:])
	p.patched = p.orig
	for i, b := range p.Bytes {
		p.patched[f.Entry+uintptr(p.Offset+i)-p.quad] = b
	}
}

// branch appends a call or jmp (op E8 or E9) from the site to target: rel32
// when it reaches, otherwise through the page header's pointer at hdr.
func (pl *Planner) branch(code []byte, site uintptr, op byte, target uintptr, hdr uintptr) []byte {
	at := site + uintptr(len(code))
	if d := int64(target) - int64(at+5); d >= math.MinInt32 && d <= math.MaxInt32 {
		code = append(code, op, 0, 0, 0, 0)
		putRel(code[len(code)-4:], int32(d))
		return code
	}
	slot := site&^(pageSize-1) + hdr
	modrm := byte(0x15) // call [rip+disp32]
	if op == 0xE9 {
		modrm = 0x25 // jmp [rip+disp32]
	}
	code = append(code, 0xFF, modrm, 0, 0, 0, 0)
	putRel(code[len(code)-4:], int32(int64(slot)-int64(at+6)))
	return code
}

// Verify checks a patch against the original code independently of how it
// was chosen: the patch decodes as one branch to the site, it fits one
// aligned quadword and the function's room, and at every original
// instruction boundary inside it the patched bytes decode to the original
// instruction.
func Verify(f Func, p *Patch) error {
	end, code := p.Offset+len(p.Bytes), f.code()
	if end > len(f.Bytes) {
		return fmt.Errorf("patch ends at +%d, past the function's %d bytes", end, len(f.Bytes))
	}
	start := f.Entry + uintptr(p.Offset)
	if start&^7 != (f.Entry+uintptr(end-1))&^7 {
		return fmt.Errorf("patch [%#x,+%d) crosses an aligned quadword", start, len(p.Bytes))
	}
	in, err := decode(p.Bytes)
	if err != nil || in.Len != len(p.Bytes) {
		return fmt.Errorf("patch % x does not decode as one instruction: %v", p.Bytes, err)
	}
	want := x86asm.JMP
	if p.Mode == CallMode {
		want = x86asm.CALL
	}
	rel, ok := in.Args[0].(x86asm.Rel)
	if in.Op != want || !ok || start+uintptr(in.Len)+uintptr(int64(rel)) != p.Site {
		return fmt.Errorf("patch % x decodes as %v, not %v to %#x", p.Bytes, in, want, p.Site)
	}
	// The image a resumed thread sees: original code with the patch on top.
	img := append(append([]byte{}, f.Bytes...), make([]byte, 16)...)
	copy(img[p.Offset:], p.Bytes)
	// An eviction chain: each jump starts inside the rel32 of the one
	// before (the entry jump's first).
	var evicted []int
	prev := p.Offset + len(p.Bytes) - 5
	for ev := p.Evict; ev != nil; ev = ev.Next {
		if err := verifyEviction(f, p, ev, prev, end, img); err != nil {
			return err
		}
		evicted = append(evicted, ev.Offset)
		end = max(end, ev.Offset+len(ev.Jump))
		copy(img[ev.Offset:], ev.Jump)
		prev = ev.Offset + len(ev.Jump) - 5
	}
	// Instructions starting at or after the patch's end cannot be affected.
	for off := 0; off < len(code) && off < end; {
		orig, err := decode(code[off:])
		if err != nil {
			return fmt.Errorf("original code at +%d: %v", off, err)
		}
		if off > p.Offset && off < end && !slices.Contains(evicted, off) {
			got, err := decode(img[off:])
			if err != nil || got.Len != orig.Len || !bytes.Equal(img[off:off+orig.Len], code[off:off+orig.Len]) || got.Op != orig.Op || got.Args != orig.Args || got.Prefix != orig.Prefix {
				return fmt.Errorf("boundary +%d: patched bytes decode as %v, original %v", off, got, orig)
			}
		}
		if off < p.Offset && off+orig.Len > p.Offset {
			return fmt.Errorf("patch point +%d is inside the instruction at +%d", p.Offset, off)
		}
		off += orig.Len
	}
	return nil
}

// verifyEviction checks one jump ev of an EvictJump chain against img
// (the code with the jumps before it on top, written up to +written): it
// starts inside the rel32 of the jump whose E9 is at +prev, agrees with
// every byte already written, fits the patch's aligned quadword or
// octoword, and leads to a stub holding the evicted instruction's own
// bytes (after a nil check, for a memory access) and a jump to the
// instruction after it.
func verifyEviction(f Func, p *Patch, ev *Eviction, prev, written int, img []byte) error {
	b := ev.Offset
	if b <= prev || b >= prev+5 || b+len(ev.Jump) > len(f.Bytes) || len(ev.Jump) < 5 || len(ev.Jump) > 7 {
		return fmt.Errorf("eviction at +%d is not inside the jump at +%d", b, prev)
	}
	// One aligned quadword, or (wide) one aligned octoword, all of it
	// the function's own bytes.
	lo, hi := f.Entry+uintptr(p.Offset), f.Entry+uintptr(b+len(ev.Jump)-1)
	if q := lo &^ 15; lo&^7 != hi&^7 && (q != hi&^15 || q < f.Entry || q+16 > f.Entry+uintptr(len(f.Bytes))) {
		return fmt.Errorf("eviction jump at +%d leaves the patch's aligned octoword", b)
	}
	for i := b; i < written && i < b+len(ev.Jump); i++ {
		if img[i] != ev.Jump[i-b] {
			return fmt.Errorf("eviction jump % x disagrees with the entry jump at +%d", ev.Jump, i)
		}
	}
	for _, x := range ev.Jump[:len(ev.Jump)-5] {
		if x != 0x3E {
			return fmt.Errorf("eviction jump % x: prefix %#02x", ev.Jump, x)
		}
	}
	in, err := decode(ev.Jump)
	rel, ok := in.Args[0].(x86asm.Rel)
	if err != nil || in.Op != x86asm.JMP || in.Len != len(ev.Jump) || !ok || f.Entry+uintptr(b+in.Len)+uintptr(int64(rel)) != ev.Addr {
		return fmt.Errorf("eviction jump % x is not one jmp to %#x", ev.Jump, ev.Addr)
	}
	orig, err := decode(f.code()[b:])
	if err != nil {
		return fmt.Errorf("evicted instruction at +%d: %v", b, err)
	}
	skip, err := verifyNilCheck(ev, orig)
	if err != nil {
		return err
	}
	code, addr := ev.Code[skip:], ev.Addr+uintptr(skip)
	// The stub's first instruction: the original's bytes, or for a
	// direct branch the same branch to the same target.
	n := orig.Len
	if ot, ok := orig.Args[0].(x86asm.Rel); ok && orig.Op != x86asm.CALL {
		got, err := decode(code)
		gt, gok := got.Args[0].(x86asm.Rel)
		if err != nil || !gok || got.Op != orig.Op ||
			addr+uintptr(got.Len)+uintptr(int64(gt)) != f.Entry+uintptr(b+orig.Len)+uintptr(int64(ot)) {
			return fmt.Errorf("eviction stub % x does not branch where the instruction at +%d does", ev.Code, b)
		}
		n = got.Len
	} else if len(code) < n || !bytes.Equal(code[:n], f.Bytes[b:b+n]) {
		return fmt.Errorf("eviction stub % x does not start with the instruction at +%d", ev.Code, b)
	}
	if (orig.Op == x86asm.RET || orig.Op == x86asm.JMP) && len(code) == n {
		return nil
	}
	back, err := decode(code[n:])
	brel, ok := back.Args[0].(x86asm.Rel)
	if err != nil || back.Op != x86asm.JMP || n+back.Len != len(code) || !ok ||
		ev.Addr+uintptr(len(ev.Code))+uintptr(int64(brel)) != f.Entry+uintptr(b+orig.Len) {
		return fmt.Errorf("eviction stub % x does not jump back to +%d", ev.Code, b+orig.Len)
	}
	return nil
}

// verifyNilCheck checks the stub's nil check against the evicted
// instruction orig and returns its length: none when orig accesses no
// memory, else test r,r; jz to ev.Fault, r the base of orig's memory
// operand.
func verifyNilCheck(ev *Eviction, orig x86asm.Inst) (int, error) {
	var base x86asm.Reg
	if accesses(orig.Op) {
		for _, a := range orig.Args {
			if m, ok := a.(x86asm.Mem); ok {
				base = m.Base
			}
		}
	}
	if base != ev.NilCheck {
		return 0, fmt.Errorf("eviction stub nil-checks %v, the evicted %v dereferences %v", ev.NilCheck, orig, base)
	}
	if base == 0 {
		return 0, nil
	}
	test, err := decode(ev.Code)
	if err != nil || test.Op != x86asm.TEST || test.Args[0] != base || test.Args[1] != base {
		return 0, fmt.Errorf("eviction stub % x does not start with test %v,%v", ev.Code, base, base)
	}
	jz, err := decode(ev.Code[test.Len:])
	rel, ok := jz.Args[0].(x86asm.Rel)
	at := ev.Addr + uintptr(test.Len+jz.Len)
	if err != nil || jz.Op != x86asm.JE || !ok || ev.Fault == 0 || at+uintptr(int64(rel)) != ev.Fault {
		return 0, fmt.Errorf("eviction stub % x: no jz to the nil-fault stub %#x after its test", ev.Code, ev.Fault)
	}
	return test.Len + jz.Len, nil
}

// pageBytes returns the relay page's memory, or nil when simulated.
func (p *Patch) pageBytes() []byte {
	if p.page.mem == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p.page.mem), pageSize)
}
