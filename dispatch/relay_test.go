//go:build amd64

package dispatch

import (
	"math"
	"slices"
	"testing"
)

// TestInPageAtTheEndOfReach: a page whose last usable slots are at the very
// end of rel32 reach, all taken, yields nothing, without wrapping around.
func TestInPageAtTheEndOfReach(t *testing.T) {
	const page = 0x7000_0000_0000
	p := &relayPage{addr: page}
	p.take(0, pageHeader)
	p.take(16, 10)
	p.take(32, 10)
	jmpEnd := uintptr(page + 36 - math.MaxInt32) // reach ends at page+36
	var r relay
	if got, ok := r.inPage(p, jmpEnd, Pins{}, 10, 16); ok {
		t.Fatalf("found %#x past the taken slots", got)
	}
	p2 := &relayPage{addr: page}
	p2.take(0, pageHeader)
	if got, ok := r.inPage(p2, jmpEnd, Pins{}, 10, 16); !ok || got != page+16 {
		t.Fatalf("free page: got %#x, %v; want %#x", got, ok, page+16)
	}
}

// TestNewPageSkipsBusyRanges: the new-page search steps over busy ranges
// and the reserved low addresses, upwards first, then downwards, and never
// places a site across a page or over the header.
func TestNewPageSkipsBusyRanges(t *testing.T) {
	space := &Simulated{Taken: []Range{{0x400000, 0x3000000}, {0x76000000, 0x76400000}}}
	r := relay{space: space}
	// Top byte pinned to 0x76: the window is [jmpEnd+0x76000000, +0x77000000).
	pins := Pins{Mask: 0xff000000, Value: 0x76000000}
	const jmpEnd = 0x401005
	addr, pg, err := r.fresh(jmpEnd, pins, 9)
	if err != nil {
		t.Fatal(err)
	}
	if addr < 0x76400000 || addr-pg.addr < pageHeader || addr+9 > pg.addr+pageSize || !pins.Allows(int32(addr-jmpEnd)) {
		t.Fatalf("site %#x in page %#x", addr, pg.addr)
	}
	// Every address allowed is taken: the search ends with an error.
	full := relay{space: &Simulated{Taken: []Range{{0, 0x7fff_ffff_ffff}}}}
	if _, _, err := full.fresh(jmpEnd, pins, 9); err == nil {
		t.Fatal("placed a site in a full address space")
	}
	// A negative window below address 0 for a non-PIE function.
	neg := relay{space: &Simulated{}}
	if _, _, err := neg.fresh(jmpEnd, Pins{Mask: 0xff000000, Value: 0xc3000000}, 9); err == nil {
		t.Fatal("placed a site below address 0")
	}
}

// TestInPagesRemembersFullPages: an unpinned search that found no room in a
// page wholly in reach marks it for that size and larger, and later
// searches of those sizes skip it; smaller sizes still look.
func TestInPagesRemembersFullPages(t *testing.T) {
	const page = 0x7000_0000_0000
	p := &relayPage{addr: page}
	p.take(0, pageSize-32) // 32 bytes left at the end
	r := relay{pages: []*relayPage{p}}
	jmpEnd := uintptr(page + 0x10000)
	if _, _, ok := r.inPages(jmpEnd, Pins{}, 51); ok || p.noRoom != 51 {
		t.Fatalf("full page: found room, or noRoom %d", p.noRoom)
	}
	if _, _, ok := r.inPages(jmpEnd, Pins{}, 64); ok || p.noRoom != 51 {
		t.Fatalf("larger size: noRoom %d", p.noRoom)
	}
	got, _, ok := r.inPages(jmpEnd, Pins{}, 16)
	if !ok || got != page+pageSize-32 {
		t.Fatalf("a smaller site fits at %#x: got %#x, %v", page+pageSize-32, got, ok)
	}
	// Out of reach of the whole page: a failure says nothing about it.
	q := &relayPage{addr: page}
	q.take(0, pageSize-32)
	r = relay{pages: []*relayPage{q}}
	if _, _, ok := r.inPages(uintptr(page+pageSize/2-math.MaxInt32), Pins{}, 51); ok || q.noRoom != 0 {
		t.Fatalf("partly in reach: noRoom %d", q.noRoom)
	}
}

// countingSpace counts the reads of its address space.
type countingSpace struct {
	Simulated
	reads int
}

func (s *countingSpace) Busy() ([]Range, error) {
	s.reads++
	return s.Simulated.Busy()
}

// TestNewPageRemembersTheAddressSpace: new pages are searched in the view
// of the address space read for the first one, not read again each time;
// when that view is out of date, a page found free but taken since fails
// Reserve and the search goes on, and a search that finds nothing reads
// the space again.
func TestNewPageRemembersTheAddressSpace(t *testing.T) {
	space := &countingSpace{Simulated: Simulated{Taken: []Range{{0x400000, 0x3000000}}}}
	r := relay{space: space}
	pins := Pins{Mask: 0xff000000, Value: 0x76000000}
	const jmpEnd = 0x401005
	first, _, err := r.fresh(jmpEnd, pins, 9)
	if err != nil {
		t.Fatal(err)
	}
	// Something else maps the pages where the next one would go.
	next := first&^(pageSize-1) + pageSize
	space.Taken = append(space.Taken, Range{next, next + 0x10000})
	second, _, err := r.fresh(jmpEnd, pins, 9)
	if err != nil {
		t.Fatal(err)
	}
	if second >= next && second < next+0x10000 {
		t.Fatalf("second site %#x in a range taken since the space was read", second)
	}
	if space.reads != 1 {
		t.Fatalf("%d reads of the address space for two pages, want 1", space.reads)
	}
	// The remembered view says the whole window is taken; it is free now.
	space.Taken = []Range{{0, 0x7fff_ffff_ffff}}
	r.seen = nil
	if _, _, err := r.fresh(jmpEnd, pins, 9); err == nil {
		t.Fatal("placed a site in a full address space")
	}
	space.Taken = nil
	if _, _, err := r.fresh(jmpEnd, pins, 9); err != nil {
		t.Fatalf("the space was freed, but the search kept its old view: %v", err)
	}
	if space.reads != 3 {
		t.Fatalf("%d reads, want 3", space.reads)
	}
}

// TestBusyRemembersItsMerge: busy answers from its last merge plus the
// pages mapped since, as a merge from scratch does, and merges again when
// the view it read has changed.
func TestBusyRemembersItsMerge(t *testing.T) {
	space := &Simulated{Taken: []Range{{0x400000, 0x3000000}, {0x7f0000000000, 0x7f0000100000}}}
	r := relay{space: space}
	pins := Pins{Mask: 0xff000000, Value: 0x76000000}
	fromScratch := func() []Range {
		saved := r.merged
		r.merged.out = nil
		out, err := r.busy()
		r.merged = saved
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Far apart, then next to each other (merged with their neighbours,
	// a review's finding).
	for i, jmpEnd := range []uintptr{0x401005, 0x406005, 0x40b005, 0x40c005, 0x40c805, 0x40d005} {
		if _, _, err := r.fresh(jmpEnd, pins, 9); err != nil {
			t.Fatal(err)
		}
		got, err := r.busy()
		if err != nil {
			t.Fatal(err)
		}
		if want := fromScratch(); !slices.Equal(got, want) {
			t.Fatalf("after %d pages: busy %#x, merged from scratch %#x", i+1, got, want)
		}
	}
	// The view changes in place: same length, other contents.
	r.seen[1] = Range{0x7e0000000000, 0x7e0000100000}
	got, _ := r.busy()
	if want := fromScratch(); !slices.Equal(got, want) {
		t.Fatalf("after the view changed: busy %#x, merged from scratch %#x", got, want)
	}
}
