package unwind

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// nameSet holds names with a few bits each, without a pointer for the
// garbage collector to scan: each name is kept once in one byte arena, as
// its bits, its length (4 bytes) and its bytes, and found through an
// open-addressing table of arena offsets. A name is known by its offset.
// Tens of thousands of names cost the arena plus 8 bytes each; a
// map[string]uint8 cost four times that and most of a walk's time.
type nameSet struct {
	arena []byte
	slots []uint32 // arena offset + 1 of the name in each slot; 0: empty
	n     int
	seed  maphash.Seed
}

func newNameSet(hint int) *nameSet {
	size := 1024
	for size < 2*hint {
		size *= 2
	}
	// About 40 bytes a name: growing the arena by copies cost more than
	// the pages of a reservation never touched.
	return &nameSet{arena: make([]byte, 0, 48*hint), slots: make([]uint32, size), seed: maphash.MakeSeed()}
}

func (s *nameSet) key(off uint32) []byte {
	n := binary.LittleEndian.Uint32(s.arena[off+1:])
	return s.arena[off+5 : off+5+n]
}

// find returns the slot holding name, or the empty slot where it would go.
func (s *nameSet) find(name []byte) int {
	mask := len(s.slots) - 1
	for i := int(maphash.Bytes(s.seed, name)) & mask; ; i = (i + 1) & mask {
		if v := s.slots[i]; v == 0 || bytes.Equal(s.key(v-1), name) {
			return i
		}
	}
}

// add ORs bits into name's, adding name if new, and returns its offset.
func (s *nameSet) add(name []byte, bits uint8) uint32 {
	i := s.find(name)
	if v := s.slots[i]; v != 0 {
		s.arena[v-1] |= bits
		return v - 1
	}
	off := uint32(len(s.arena))
	s.arena = append(s.arena, bits, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(s.arena[off+1:], uint32(len(name)))
	s.arena = append(s.arena, name...)
	s.slots[i] = off + 1
	s.n++
	if 2*s.n > len(s.slots) {
		s.grow()
	}
	return off
}

func (s *nameSet) grow() {
	old := s.slots
	s.slots = make([]uint32, 2*len(old))
	for _, v := range old {
		if v != 0 {
			s.slots[s.find(s.key(v-1))] = v
		}
	}
}

// lookup returns name's offset, if the set holds it.
func (s *nameSet) lookup(name string) (uint32, bool) {
	v := s.slots[s.find([]byte(name))]
	return v - 1, v != 0
}

func (s *nameSet) bits(off uint32) uint8 { return s.arena[off] }

func (s *nameSet) name(off uint32) string { return string(s.key(off)) }
