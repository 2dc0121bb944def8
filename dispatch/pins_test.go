package dispatch

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPinsString(t *testing.T) {
	for _, tc := range []struct {
		pins Pins
		want string
	}{
		{Pins{}, "xxxxxxxx"},
		{Pins{0xff000000, 0x76000000}, "76xxxxxx"},
		{Pins{0x00ff00ff, 0x00c30011}, "xxc3xx11"},
	} {
		if got := tc.pins.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.pins, got, tc.want)
		}
	}
}

// allowed lists every rel32 the pins allow, in signed order, by brute
// force over the free bytes (at most two are free in these tests).
func allowed(p Pins) []int32 {
	var free []uint
	for i := uint(0); i < 4; i++ {
		if p.Mask>>(8*i)&0xff == 0 {
			free = append(free, i)
		}
	}
	var out []int32
	for n := 0; n < 1<<(8*len(free)); n++ {
		v := p.Value
		for j, i := range free {
			v |= uint32(n>>(8*j)&0xff) << (8 * i)
		}
		out = append(out, int32(v))
	}
	slices.Sort(out)
	return out
}

func TestPinsNextPrevAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	masks := []uint32{0xffffffff, 0xffffff00, 0xffff00ff, 0xff00ffff, 0x00ffffff, 0xffff0000, 0xff00ff00, 0x00ff00ff, 0x0000ffff, 0x00ffff00}
	for _, m := range masks {
		for range 200 {
			p := Pins{Mask: m, Value: rng.Uint32() & m}
			all := allowed(p)
			for range 20 {
				rel := int32(rng.Uint32())
				if rng.IntN(2) == 0 { // land near an allowed value often
					rel = all[rng.IntN(len(all))] + int32(rng.IntN(3)) - 1
				}
				i, _ := slices.BinarySearch(all, rel)
				wantN, wantOkN := int32(0), i < len(all)
				if wantOkN {
					wantN = all[i]
				}
				j := i - 1
				if i < len(all) && all[i] == rel {
					j = i
				}
				wantP, wantOkP := int32(0), j >= 0
				if wantOkP {
					wantP = all[j]
				}
				gotN, okN := p.Next(rel)
				if okN != wantOkN || (okN && gotN != wantN) {
					t.Fatalf("%v.Next(%#x) = %#x,%v; want %#x,%v", p, uint32(rel), uint32(gotN), okN, uint32(wantN), wantOkN)
				}
				gotP, okP := p.Prev(rel)
				if okP != wantOkP || (okP && gotP != wantP) {
					t.Fatalf("%v.Prev(%#x) = %#x,%v; want %#x,%v", p, uint32(rel), uint32(gotP), okP, uint32(wantP), wantOkP)
				}
			}
		}
	}
}

func TestPinsSignedOrder(t *testing.T) {
	// The top byte pinned to 0x80 means every allowed rel32 is negative.
	p := Pins{0xff000000, 0x80000000}
	if r, ok := p.Next(0); ok {
		t.Fatalf("Next(0) = %#x, want none", uint32(r))
	}
	if r, ok := p.Prev(0); !ok || r != int32(-0x7f000001) {
		t.Fatalf("Prev(0) = %#x,%v; want %#x", uint32(r), ok, uint32(0x80ffffff))
	}
	if r, ok := p.Next(-1 << 31); !ok || r != -1<<31 {
		t.Fatalf("Next(min) = %#x,%v", uint32(r), ok)
	}
}
