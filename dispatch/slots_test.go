//go:build amd64

package dispatch

import (
	"encoding/hex"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestSlotCode: a slot's bytes, near (call rel32 to the slot dispatcher)
// and far (call through the page header), and what x86asm decodes from
// either entry: pop rbp for a patch past push rbp, one byte later for any
// other, then the call, whose return address is the key, and jmp r12.
func TestSlotCode(t *testing.T) {
	cases := []struct {
		name string
		page uintptr
		far  bool
		want string
	}{
		{"near", 0x76000000, false, "5de8aa10408a41ffe4cccccccccccccc"},
		{"far", 0x7f0000000000, true, "5dff15e9ffffff41ffe4cccccccccccc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &relayPage{addr: tc.page, slots: true, far: tc.far}
			s := slotEntry(p.addr, 0, true)
			code := p.slotCode(s, fakeSlotDispatcher)
			if got := hex.EncodeToString(code); got != tc.want {
				t.Fatalf("slot %s, want %s", got, tc.want)
			}
			if last := slotEntry(p.addr, slotsPerPage-1, true); last+slotSize != p.addr+pageSize {
				t.Fatalf("last slot ends at %#x, not at the page's end", last+slotSize)
			}
			for _, pop := range []bool{true, false} {
				entry := slotEntry(p.addr, 0, pop)
				var ops []string
				for off := int(entry - s); off < len(code); {
					in, err := x86asm.Decode(code[off:], 64)
					if err != nil || in.Op == x86asm.INT {
						break
					}
					pc := s + uintptr(off+in.Len)
					switch a := in.Args[0].(type) {
					case x86asm.Rel:
						ops = append(ops, fmt.Sprintf("%v %#x", in.Op, pc+uintptr(int64(a))))
					case x86asm.Mem:
						ops = append(ops, fmt.Sprintf("%v [%#x]", in.Op, pc+uintptr(a.Disp)))
					default:
						ops = append(ops, in.String())
					}
					off += in.Len
				}
				call := fmt.Sprintf("CALL %#x", fakeSlotDispatcher)
				if tc.far {
					call = fmt.Sprintf("CALL [%#x]", tc.page) // the header's first word
				}
				want := []string{call, "JMP R12"}
				if pop {
					want = append([]string{"POP RBP"}, want...)
				}
				if fmt.Sprint(ops) != fmt.Sprint(want) {
					t.Fatalf("from %#x: %q, want %q", entry, ops, want)
				}
			}
		})
	}
}

// TestSlotsShareAPage: standard prologues 1 MiB apart, whose pins leave a
// 16 MiB window, take consecutive slots of one page; a patch past push rbp
// enters its slot at the pop; the 256th slot patch needs a second page;
// code that is not a slot (a fully pinned site, a trampoline) never goes
// into a slot page; without a slot dispatcher there are no slots.
func TestSlotsShareAPage(t *testing.T) {
	std, _ := hex.DecodeString("493b6610764a554889e54883ec10")
	push, _ := hex.DecodeString("554889e5e877de02004885c07406488b08488b015dc3")
	fn := func(entry uintptr, code []byte) Func {
		return Func{Name: fmt.Sprintf("f%#x", entry), Entry: entry, Size: len(code), Bytes: code}
	}
	space := &Simulated{Taken: append([]Range(nil), image...)}
	pl := NewPlanner(space, fakeDispatcher, fakeCallDispatcher)
	pl.SlotDispatcher = fakeSlotDispatcher
	var page *relayPage
	for i := range slotsPerPage + 1 {
		f := fn(0x500000+uintptr(i)*0x100000/slotsPerPage&^15, std)
		p, err := pl.Plan(f, SiteMode)
		if err != nil {
			t.Fatal(err)
		}
		checkPatch(t, f, p)
		checkSite(t, p, f)
		if i == 0 {
			page = p.page
		}
		s := slotEntry(page.addr, i, true)
		switch {
		case !p.slot || p.RouteAt != -1:
			t.Fatalf("function %d: not a slot (site %#x)", i, p.Site)
		case i < slotsPerPage && (p.page != page || p.Site != s+1 || p.Key != s+6):
			t.Fatalf("function %d: site %#x key %#x, want slot %d of page %#x (%#x, key %#x)", i, p.Site, p.Key, i, page.addr, s+1, s+6)
		case i == slotsPerPage && p.page == page:
			t.Fatalf("a %dth slot in a page of %d", i+1, slotsPerPage)
		}
	}
	f := fn(0x470f40, push)
	p, err := pl.Plan(f, SiteMode)
	if err != nil {
		t.Fatal(err)
	}
	checkSite(t, p, f)
	if !p.slot || p.Tactic != PastPushRBP || (p.Site-p.page.addr-pageHeader)%slotSize != 0 {
		t.Fatalf("%v site %#x: want a slot entered at its pop rbp", p.Tactic, p.Site)
	}
	tramp, err := pl.PlanTrampoline(fn(0x500000, std))
	if err != nil {
		t.Fatal(err)
	}
	for _, pg := range pl.relay.pages {
		if !pg.slots {
			continue
		}
		if a := tramp.Addr; a >= pg.addr && a < pg.addr+2*pageSize {
			t.Fatalf("trampoline %#x in slot page %#x or its data page", a, pg.addr)
		}
		if !slices.Contains(space.Taken, Range{pg.addr, pg.addr + 2*pageSize}) {
			t.Fatalf("slot page %#x: the space reserved no data page after it", pg.addr)
		}
	}
	bare := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
	if p, err := bare.Plan(fn(0x500000, std), SiteMode); err != nil || p.slot {
		t.Fatalf("no slot dispatcher: slot %v, %v", p != nil && p.slot, err)
	}
}

// TestSearchStartsMidWindow: a new page for a top-byte pin lies in the
// middle of its 16 MiB window, so that functions on either side reach it;
// free rel32s start next to the code.
func TestSearchStartsMidWindow(t *testing.T) {
	cases := []struct {
		pins   Pins
		lo, hi int32
		want   int32
	}{
		{Pins{Mask: 0xff000000, Value: 0x76000000}, -0x400000, 0x7fffffff, 0x76800000},
		{Pins{Mask: 0xff000000, Value: 0xe8000000}, -0x7fffffff, -1, -0x17800000},
		{Pins{Mask: 0xffff0000, Value: 0x77e80000}, -0x400000, 0x7fffffff, 0x77e88000},
		{Pins{}, -0x400000, 0x7fffffff, 0},
		{Pins{Mask: 0xff, Value: 0x10}, -0x400000, 0x7fffffff, 0x10},
	}
	for _, tc := range cases {
		if got := searchStart(tc.pins, tc.lo, tc.hi); got != tc.want {
			t.Errorf("%v: start %#x, want %#x", tc.pins, got, tc.want)
		}
	}
}

// TestFreshSlotsFitsTheEntry: the search for a new slot page is for the
// entry the patch takes. Here the pins allow one free page's first slot at
// its pop rbp but not a byte later (a review's case): a patch entering
// after the pop gets no slot page, and the page stays free for its own
// site; one entering at the pop gets the page.
func TestFreshSlotsFitsTheEntry(t *testing.T) {
	const jmpEnd = 0x20000011
	pins := Pins{Mask: 0xffff0000, Value: 0x10000000} // rel in [0x10000000, 0x10010000)
	taken := []Range{{0x30000000, 0x30010000}, {0x30012000, 0x7fff_ffff_ffff}}
	r := relay{space: &Simulated{Taken: slices.Clone(taken)}}
	if p, err := r.freshSlots(jmpEnd, pins, fakeSlotDispatcher, false); err == nil {
		t.Fatalf("slot page %#x for an entry its pins refuse", p.addr)
	}
	if site, _, err := r.fresh(jmpEnd, pins, 17); err != nil || site != 0x30010010 {
		t.Fatalf("site %#x, %v; want the page's first site, 0x30010010", site, err)
	}
	r = relay{space: &Simulated{Taken: slices.Clone(taken)}}
	p, err := r.freshSlots(jmpEnd, pins, fakeSlotDispatcher, true)
	if err != nil || p.addr != 0x30010000 {
		t.Fatalf("popping entry: page %v, %v", p, err)
	}
	if site, _, ok := r.inSlots(jmpEnd, pins, true); !ok || site != 0x30010010 {
		t.Fatalf("popping entry: slot %#x, %v", site, ok)
	}
}

// TestSlotRoutesStayInALine: a slot's route lies at its return address
// plus a page, 6 or 7 bytes into the slot, so not 8-aligned; an 8-byte
// store or load is still one access on x86 where it stays within a cache
// line, which every slot's does, near or far, and no two routes overlap.
func TestSlotRoutesStayInALine(t *testing.T) {
	for _, far := range []bool{false, true} {
		p := &relayPage{addr: 0x76000000, slots: true, far: far}
		last := uintptr(0)
		for i := range slotsPerPage {
			s := slotEntry(p.addr, i, true)
			key := s + 6
			if far {
				key++
			}
			if code := p.slotCode(s, fakeSlotDispatcher); code[key-s] != 0x41 {
				t.Fatalf("far %v, slot %d: key +%d is not the jmp r12 of % x", far, i, key-s, code)
			}
			off := key - p.addr // in the data page
			if off/64 != (off+7)/64 || off+8 > pageSize || off < last {
				t.Fatalf("far %v, slot %d: route at data page +%#x crosses a line, the page, or the last route", far, i, off)
			}
			last = off + 8
		}
	}
}
