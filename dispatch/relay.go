package dispatch

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/switchboard-go/switchboard"
)

const (
	pageSize = 4096
	// pageHeader bytes at the start of every relay page hold the absolute
	// addresses of the two dispatchers, for sites too far to call them
	// with rel32.
	pageHeader = 16
	// minAddr is the lowest address a relay page may take
	// (vm.mmap_min_addr; non-PIE binaries load at 0x400000).
	minAddr = 0x10000
)

// maxAddr is the top of the 47-bit user address space (a variable, so that
// the package builds on 32-bit platforms, where nothing is planned live).
var maxAddr = uintptr(userTop)

var userTop uint64 = 0x7ffffffff000

// Range is a half-open address range [Start, End).
type Range struct{ Start, End uintptr }

// Space is the address space relay pages are carved from: the live process
// (mmap), or a simulation of a binary's layout for the scanner.
type Space interface {
	// Busy lists the ranges that are in use, in any order.
	Busy() ([]Range, error)
	// Reserve maps size bytes at addr (a page, or a slot page and its data
	// page), which must be free, the first page filled with int3 and not
	// yet executable: the first write of a site makes it read-execute.
	// The returned memory is nil in a simulation.
	Reserve(addr uintptr, size int) (unsafe.Pointer, error)
}

// The slot dispatcher reads a slot's route one page past its return
// address.
var (
	_ [switchboard.SlotRouteOffset - pageSize]struct{}
	_ [pageSize - switchboard.SlotRouteOffset]struct{}
)

// relayPage is one page of sites. Sites live for the life of the process.
type relayPage struct {
	addr uintptr
	mem  unsafe.Pointer // nil when simulated; for a slot page, its data page follows
	used [pageSize / 64]uint64
	// slots: the page was laid out in site-mode slots before it was ever
	// executable (see slotCode), and taken marks those in use; no other
	// code goes there. It maps a data page after it, for their routes.
	// far: its slots call the slot dispatcher through the header.
	slots, far bool
	taken      [(slotsPerPage + 63) / 64]uint64
	nTaken     int
	// noRoom, when not 0, is the smallest size an unpinned search of the
	// whole page found no room for: pages only fill up, so larger ones
	// need not look again. Trampolines (unpinned) would otherwise rescan
	// every full page for each new one.
	noRoom int
	// exec: the page has been made read-execute (guarded by writeMu).
	// Until its first site it stays read-write and never executable, so
	// that first write needs no mprotect to open it.
	exec bool
}

// end is where the page's mapping ends.
func (p *relayPage) end() uintptr {
	if p.slots {
		return p.addr + 2*pageSize
	}
	return p.addr + pageSize
}

func (p *relayPage) free(off, n int) bool {
	for i := off; i < off+n; i++ {
		if p.used[i/64]>>(i%64)&1 != 0 {
			return false
		}
	}
	return true
}

func (p *relayPage) take(off, n int) {
	for i := off; i < off+n; i++ {
		p.used[i/64] |= 1 << (i % 64)
	}
}

// relay hands out site addresses. Its caller serializes it.
type relay struct {
	space Space
	pages []*relayPage
	// cached, when not nil, stands for space.Busy() during PlanAll; pages
	// mapped since are in pages, and a page taken meanwhile fails Reserve.
	cached []Range
	// seen is the last space.Busy(), which later searches reuse for the
	// same reasons (reading /proc/self/maps costs tens of microseconds, a
	// third of a later first Set); a search that finds nothing with it
	// reads the address space again.
	seen []Range
	// merged is busy's last answer, from a copy of the view it read and
	// the first pages pages: a later first Set otherwise sorted the whole
	// view again for its new page.
	merged struct {
		view  []Range
		pages int
		out   []Range
	}
}

// siteAlign is the alignment sites get when the pins leave the low bits
// free: a 16-byte aligned site decodes in one fetch block.
func siteAlign(pins Pins) int {
	if pins.Mask&0xf != 0 {
		return 1
	}
	return 16
}

// inPages finds room for a site of size bytes in a page it already has, at
// an address whose rel32 from jmpEnd satisfies pins, and takes it.
func (r *relay) inPages(jmpEnd uintptr, pins Pins, size int) (uintptr, *relayPage, bool) {
	unpinned := pins.Mask == 0
	for _, p := range r.pages {
		if unpinned && p.noRoom != 0 && size >= p.noRoom {
			continue
		}
		if t, ok := r.inPage(p, jmpEnd, pins, size, siteAlign(pins)); ok {
			p.take(int(t-p.addr), size)
			return t, p, true
		}
		if unpinned && wholePageInReach(jmpEnd, p, size) && (p.noRoom == 0 || size < p.noRoom) {
			p.noRoom = size
		}
	}
	return 0, nil, false
}

// wholePageInReach reports whether rel32 from jmpEnd reaches every site
// address of the page, so that a failed unpinned search saw all of it.
func wholePageInReach(jmpEnd uintptr, p *relayPage, size int) bool {
	lo, hi, ok := relRange(jmpEnd, p.addr+pageHeader, p.addr+pageSize-uintptr(size))
	return ok && int64(lo) == int64(p.addr+pageHeader)-int64(jmpEnd) && int64(hi) == int64(p.addr+pageSize-uintptr(size))-int64(jmpEnd)
}

// fresh maps a new page holding such an address, and takes the site.
func (r *relay) fresh(jmpEnd uintptr, pins Pins, size int) (uintptr, *relayPage, error) {
	t, p, err := r.newPage(jmpEnd, pins, size, siteAlign(pins), false)
	if err != nil {
		return 0, nil, err
	}
	p.take(int(t-p.addr), size)
	return t, p, nil
}

// relRange clips [lo, hi] (addresses) to what rel32 from jmpEnd reaches.
func relRange(jmpEnd, lo, hi uintptr) (int32, int32, bool) {
	l := max(int64(lo)-int64(jmpEnd), math.MinInt32)
	h := min(int64(hi)-int64(jmpEnd), math.MaxInt32)
	return int32(l), int32(h), l <= h
}

func alignUp(t uintptr, a int) uintptr { return (t + uintptr(a) - 1) &^ (uintptr(a) - 1) }

// inPage looks for a free site address in an existing page. The search
// runs in int64: a page straddling the end of rel32 reach would otherwise
// wrap.
func (r *relay) inPage(p *relayPage, jmpEnd uintptr, pins Pins, size, align int) (uintptr, bool) {
	lo, hi, ok := relRange(jmpEnd, p.addr+pageHeader, p.addr+pageSize-uintptr(size))
	for x := int64(lo); ok && x <= int64(hi); {
		rel, found := pins.Next(int32(x))
		if !found || int64(rel) < x || rel > hi {
			return 0, false
		}
		t := jmpEnd + uintptr(int64(rel))
		if a := alignUp(t, align); a != t {
			x = int64(rel) + int64(a-t)
			continue
		}
		if p.free(int(t-p.addr), size) {
			return t, true
		}
		x = int64(rel) + 1
	}
	return 0, false
}

// newPage searches the reachable address space for a free page holding an
// allowed site address: upwards from jmpEnd, then downwards. A search over
// a remembered view of the address space that finds nothing is made again
// over a fresh one.
func (r *relay) newPage(jmpEnd uintptr, pins Pins, size, align int, slots bool) (uintptr, *relayPage, error) {
	remembered := r.cached == nil && r.seen != nil
	t, p, err := r.searchPage(jmpEnd, pins, size, align, slots)
	if err != nil && remembered {
		r.seen = nil
		t, p, err = r.searchPage(jmpEnd, pins, size, align, slots)
	}
	return t, p, err
}

func (r *relay) searchPage(jmpEnd uintptr, pins Pins, size, align int, slots bool) (uintptr, *relayPage, error) {
	span := uintptr(pageSize) // what the page maps: a slot page, a data page too
	if slots {
		span *= 2
	}
	busy, err := r.busy()
	if err != nil {
		return 0, nil, err
	}
	// busyAt returns the busy range holding page, if any.
	busyAt := func(page uintptr) (Range, bool) {
		i, _ := slices.BinarySearchFunc(busy, page, func(b Range, a uintptr) int {
			switch {
			case b.End <= a:
				return -1
			case b.Start > a:
				return 1
			}
			return 0
		})
		if i < len(busy) && busy[i].Start <= page && page < busy[i].End {
			return busy[i], true
		}
		return Range{}, false
	}
	try := func(page uintptr) (*relayPage, bool) {
		mem, err := r.space.Reserve(page, int(span))
		if err != nil {
			// Taken since we looked, or refused: treat it as busy.
			busy = merged(insertRange(busy, Range{page, page + span}))
			return nil, false
		}
		p := &relayPage{addr: page, mem: mem, slots: slots}
		p.take(0, pageHeader)
		r.pages = append(r.pages, p)
		return p, true
	}

	lo, hi, ok := relRange(jmpEnd, minAddr, maxAddr-uintptr(size))
	if !ok {
		return 0, nil, fmt.Errorf("no address within rel32 reach")
	}
	start := searchStart(pins, lo, hi)
	// Upwards from start.
	for x := start; x <= hi; {
		rel, found := pins.Next(x)
		if !found || rel > hi {
			break
		}
		t := jmpEnd + uintptr(int64(rel))
		page := t &^ (pageSize - 1)
		var next uintptr // the lowest address worth trying after t
		switch {
		case t-page < pageHeader:
			next = page + pageHeader
		case t+uintptr(size) > page+pageSize:
			next = page + pageSize + pageHeader
		case alignUp(t, align) != t:
			next = alignUp(t, align)
		default:
			if b, isBusy := busyAt(page); isBusy {
				next = b.End + pageHeader
			} else if b, isBusy := busyAt(page + span - pageSize); isBusy {
				next = b.End + pageHeader
			} else if p, ok := try(page); ok {
				return t, p, nil
			} else {
				next = page + pageSize + pageHeader
			}
		}
		d := int64(next) - int64(jmpEnd)
		if d > math.MaxInt32 || next <= t {
			break
		}
		x = int32(d)
	}
	// Downwards from start-1.
	for x := int64(start) - 1; x >= int64(lo); {
		rel, found := pins.Prev(int32(x))
		if !found || rel < lo {
			break
		}
		t := jmpEnd + uintptr(int64(rel))
		page := t &^ (pageSize - 1)
		var next uintptr // the highest address worth trying after t
		switch {
		case t+uintptr(size) > page+pageSize:
			next = page + pageSize - uintptr(size)
		case t-page < pageHeader:
			next = page - uintptr(size)
		case t&^(uintptr(align)-1) != t:
			next = t &^ (uintptr(align) - 1)
		default:
			if b, isBusy := busyAt(page); isBusy {
				next = b.Start - uintptr(size)
			} else if b, isBusy := busyAt(page + span - pageSize); isBusy {
				next = b.Start - (span - pageSize) - uintptr(size)
			} else if p, ok := try(page); ok {
				return t, p, nil
			} else {
				next = page - uintptr(size)
			}
		}
		d := int64(next) - int64(jmpEnd)
		if d < math.MinInt32 || next > t {
			break
		}
		x = d
	}
	return 0, nil, fmt.Errorf("every address rel32 %v reaches from %#x is taken, inside the binary or out of bounds", pins, jmpEnd)
}

// searchStart is the rel32 where the search for a new page begins. Pinned
// bytes leave the allowed rel32s in aligned runs as long as the lowest
// pinned bit allows (16 MiB when only the top byte is pinned); the search
// starts in the middle of the first run from 0 upwards (else downwards),
// so that the page is in reach of functions with the same pins on either
// side, up to half a run away. A page at a run's end serves one side
// only: a later first Set of each next function up needed a page of its
// own. Unpinned rel32s start at 0, next to the code.
func searchStart(pins Pins, lo, hi int32) int32 {
	if pins.Free() {
		return max(lo, 0)
	}
	rel, ok := pins.Next(max(lo, 0))
	if !ok || rel > hi {
		if rel, ok = pins.Prev(min(hi, -1)); !ok || rel < lo {
			return max(lo, 0)
		}
	}
	run := int64(1) << bits.TrailingZeros32(pins.Mask)
	mid := int64(rel)&^(run-1) + run/2
	return int32(min(max(mid, int64(lo)), int64(hi)))
}

// busy returns the space's busy ranges plus what is out of bounds, sorted,
// merged and rounded out to whole pages.
func (r *relay) busy() ([]Range, error) {
	b, err := r.cached, error(nil)
	if b == nil {
		b = r.seen
	}
	if b == nil {
		if b, err = r.space.Busy(); err == nil {
			r.seen = b
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the address space: %w", err)
	}
	m := &r.merged
	if m.out != nil && slices.Equal(m.view, b) {
		// Pages are mapped where the view and the pages before found room.
		for _, p := range r.pages[m.pages:] {
			m.out = merged(insertRange(m.out, Range{p.addr, p.end()}))
		}
		m.pages = len(r.pages)
		return slices.Clone(m.out), nil
	}
	all := []Range{{0, minAddr}, {maxAddr, ^uintptr(0)}}
	for _, x := range b {
		all = append(all, Range{x.Start &^ (pageSize - 1), alignUp(x.End, pageSize)})
	}
	for _, p := range r.pages {
		all = append(all, Range{p.addr, p.end()})
	}
	slices.SortFunc(all, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := merged(all)
	m.view, m.pages, m.out = slices.Clone(b), len(r.pages), slices.Clone(out)
	return out, nil
}

// merged joins the overlapping and touching ranges of a sorted list, in
// place.
func merged(rs []Range) []Range {
	if len(rs) == 0 {
		return rs
	}
	out := rs[:1]
	for _, x := range rs[1:] {
		if last := &out[len(out)-1]; x.Start <= last.End {
			last.End = max(last.End, x.End)
		} else {
			out = append(out, x)
		}
	}
	return out
}

// insertRange adds one range to a sorted, merged list.
func insertRange(rs []Range, x Range) []Range {
	i, _ := slices.BinarySearchFunc(rs, x.Start, func(b Range, a uintptr) int {
		if b.Start < a {
			return -1
		}
		if b.Start > a {
			return 1
		}
		return 0
	})
	return slices.Insert(rs, i, x)
}

// Slots: a page laid out before it is ever executable in 16-byte site-mode
// sites, each
//
//	pop rbp; call slotDispatcher (E8 rel32, or FF 15 through the header); jmp r12; int3...
//
// entered at its pop rbp by a patch past the prologue's push rbp
// (PastPushRBP), one byte later by any other. Its route lies in the data
// page after it, SlotRouteOffset past its return address, where the slot
// dispatcher reads it: a patch that takes a slot stores a pointer and
// writes no code. The page's bytes never change once it is executable, so
// no core can hold stale instructions of them, and no core needs
// serializing for them; a site written into a page already executable
// needs two mprotects and a membarrier, a sixth of a later first Set.
const (
	slotSize     = 16
	slotsPerPage = (pageSize - pageHeader) / slotSize
)

// slotted reports whether c's site may be a slot: site mode, no eviction
// stub to place beside it, and pins that leave the low 16 bits free, so
// that whether a page's slots are in reach is decided per slot and not
// per byte.
func slotted(c candidate, mode Mode) bool {
	return mode == SiteMode && c.tactic != EvictJump && c.pins.Mask&0xffff == 0
}

// slotEntry is where a patch enters slot i of a page at addr.
func slotEntry(addr uintptr, i int, popRBP bool) uintptr {
	s := addr + pageHeader + uintptr(i*slotSize)
	if !popRBP {
		s++
	}
	return s
}

// inSlots takes a free slot of a slot page whose entry rel32 from jmpEnd
// reaches and pins allow.
func (r *relay) inSlots(jmpEnd uintptr, pins Pins, popRBP bool) (uintptr, *relayPage, bool) {
	for _, p := range r.pages {
		if !p.slots || p.nTaken == slotsPerPage {
			continue
		}
		// Allowed rel32s come in aligned runs of 64 KiB or more: a page
		// holds one only if it holds one of its ends.
		if lo, hi, ok := relRange(jmpEnd, p.addr, p.addr+pageSize); !ok || !pins.Allows(lo) && !pins.Allows(hi) {
			continue
		}
		for i := range slotsPerPage {
			if p.taken[i/64]>>(i%64)&1 != 0 {
				continue
			}
			t := slotEntry(p.addr, i, popRBP)
			if d := int64(t) - int64(jmpEnd); d >= math.MinInt32 && d <= math.MaxInt32 && pins.Allows(int32(d)) {
				p.taken[i/64] |= 1 << (i % 64)
				p.nTaken++
				return t, p, true
			}
		}
	}
	return 0, nil, false
}

// freshSlots maps a new slot page holding a slot whose entry (at its pop
// rbp, or one byte later) rel32 from jmpEnd reaches with these pins, and
// lays its slots out, calling dispatch (the slot dispatcher). The search
// is for the slot's start, 16-aligned: from jmpEnd one byte lower, a
// later entry's rel32 is the start's.
func (r *relay) freshSlots(jmpEnd uintptr, pins Pins, dispatch uintptr, popRBP bool) (*relayPage, error) {
	if !popRBP {
		jmpEnd--
	}
	_, p, err := r.newPage(jmpEnd, pins, slotSize, slotSize, true)
	if err != nil {
		return nil, err
	}
	for i := range p.used {
		p.used[i] = ^uint64(0)
	}
	first, last := slotEntry(p.addr, 0, true), slotEntry(p.addr, slotsPerPage-1, true)
	p.far = !reaches(first+6, dispatch) || !reaches(last+6, dispatch)
	if p.mem != nil {
		mem := unsafe.Slice((*byte)(p.mem), pageSize)
		binary.LittleEndian.PutUint64(mem[0:], uint64(dispatch))
		for i := range slotsPerPage {
			s := slotEntry(p.addr, i, true)
			copy(mem[s-p.addr:], p.slotCode(s, dispatch))
		}
	}
	return p, nil
}

// reaches reports whether a call ending at end reaches target with rel32.
func reaches(end, target uintptr) bool {
	d := int64(target) - int64(end)
	return d >= math.MinInt32 && d <= math.MaxInt32
}

// slotCode is the slot starting at s (its pop rbp) of page p.
func (p *relayPage) slotCode(s, dispatch uintptr) []byte {
	code := make([]byte, 0, slotSize)
	code = append(code, 0x5D) // pop rbp
	if p.far {
		code = append(code, 0xFF, 0x15, 0, 0, 0, 0) // call [rip+disp32]: the header
		putRel(code[3:], int32(int64(p.addr)-int64(s+7)))
	} else {
		code = append(code, 0xE8, 0, 0, 0, 0)
		putRel(code[2:], int32(int64(dispatch)-int64(s+6)))
	}
	code = append(code, 0x41, 0xFF, 0xE4) // jmp r12
	for len(code) < slotSize {
		code = append(code, 0xCC)
	}
	return code
}
