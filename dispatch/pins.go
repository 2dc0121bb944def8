package dispatch

import (
	"fmt"
	"strings"
)

// Pins are the bytes of a rel32 that punning fixes: the bytes that must keep
// the original values of the instructions they overlap. A rel32 r is allowed
// when r&Mask == Value. Mask is made of whole bytes.
type Pins struct {
	Mask, Value uint32
}

// Allows reports whether rel satisfies the pins.
func (p Pins) Allows(rel int32) bool { return uint32(rel)&p.Mask == p.Value }

// Free reports whether no byte is pinned.
func (p Pins) Free() bool { return p.Mask == 0 }

// String shows the rel32 high byte first, "xx" for a free byte:
// "76xxxxxx" pins only the top byte to 0x76.
func (p Pins) String() string {
	var b strings.Builder
	for i := 3; i >= 0; i-- {
		if p.Mask>>(8*i)&0xff == 0 {
			b.WriteString("xx")
		} else {
			fmt.Fprintf(&b, "%02x", byte(p.Value>>(8*i)))
		}
	}
	return b.String()
}

// The searches below run in "ordered" space: a rel32 with its sign bit
// flipped, so that unsigned order is signed order.
const signFlip = 0x80000000

func (p Pins) ordered() Pins { return Pins{p.Mask, p.Value ^ (p.Mask & signFlip)} }

// Next returns the smallest allowed rel32 >= rel.
func (p Pins) Next(rel int32) (int32, bool) {
	v, ok := p.ordered().next(uint32(rel) ^ signFlip)
	return int32(v ^ signFlip), ok
}

// Prev returns the largest allowed rel32 <= rel.
func (p Pins) Prev(rel int32) (int32, bool) {
	v, ok := p.ordered().prev(uint32(rel) ^ signFlip)
	return int32(v ^ signFlip), ok
}

// next finds the smallest v >= x with v&Mask == Value, building v from the
// top byte down while it still equals x ("tight").
func (p Pins) next(x uint32) (uint32, bool) {
	var walk func(i int, acc uint32) (uint32, bool)
	// rest fills bytes i..0 with their smallest allowed values.
	rest := func(i int, acc uint32) uint32 {
		lo := uint32(1)<<(8*(i+1)) - 1
		return acc | p.Value&lo
	}
	walk = func(i int, acc uint32) (uint32, bool) {
		if i < 0 {
			return acc, true
		}
		sh := 8 * uint(i)
		xb := x >> sh & 0xff
		if p.Mask>>sh&0xff != 0 {
			vb := p.Value >> sh & 0xff
			switch {
			case vb > xb:
				return rest(i-1, acc|vb<<sh), true
			case vb < xb:
				return 0, false
			}
			return walk(i-1, acc|vb<<sh)
		}
		if v, ok := walk(i-1, acc|xb<<sh); ok {
			return v, true
		}
		if xb == 0xff {
			return 0, false
		}
		return rest(i-1, acc|(xb+1)<<sh), true
	}
	return walk(3, 0)
}

// prev finds the largest v <= x with v&Mask == Value.
func (p Pins) prev(x uint32) (uint32, bool) {
	var walk func(i int, acc uint32) (uint32, bool)
	// rest fills bytes i..0 with their largest allowed values.
	rest := func(i int, acc uint32) uint32 {
		lo := uint32(1)<<(8*(i+1)) - 1
		return acc | (p.Value|^p.Mask)&lo
	}
	walk = func(i int, acc uint32) (uint32, bool) {
		if i < 0 {
			return acc, true
		}
		sh := 8 * uint(i)
		xb := x >> sh & 0xff
		if p.Mask>>sh&0xff != 0 {
			vb := p.Value >> sh & 0xff
			switch {
			case vb < xb:
				return rest(i-1, acc|vb<<sh), true
			case vb > xb:
				return 0, false
			}
			return walk(i-1, acc|vb<<sh)
		}
		if v, ok := walk(i-1, acc|xb<<sh); ok {
			return v, true
		}
		if xb == 0 {
			return 0, false
		}
		return rest(i-1, acc|(xb-1)<<sh), true
	}
	return walk(3, 0)
}
