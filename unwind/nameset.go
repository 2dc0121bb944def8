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
// Tens of thousands of names cost the arena plus 16 bytes each; a
// map[string]uint8 cost twice that and a fifth of a walk's time.
type nameSet struct {
	arena []byte
	// Each slot: the name's hash in the high 32 bits, checked before its
	// bytes are, and its arena offset + 1 in the low 32; 0: empty.
	slots []uint64
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
	return &nameSet{arena: make([]byte, 0, 48*hint), slots: make([]uint64, size), seed: maphash.MakeSeed()}
}

func (s *nameSet) key(off uint32) []byte {
	n := binary.LittleEndian.Uint32(s.arena[off+1:])
	return s.arena[off+5 : off+5+n]
}

// find returns the slot holding name, or the empty slot where it would
// go, and name's hash.
func (s *nameSet) find(name []byte) (int, uint64) {
	h := maphash.Bytes(s.seed, name)
	return s.findHash(name, h), h
}

func (s *nameSet) findHash(name []byte, h uint64) int {
	mask := len(s.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		v := s.slots[i]
		if v == 0 || v>>32 == h>>32 && bytes.Equal(s.key(uint32(v)-1), name) {
			return i
		}
	}
}

// add ORs bits into name's, adding name if new, and returns its offset.
func (s *nameSet) add(name []byte, bits uint8) uint32 {
	i, h := s.find(name)
	if v := s.slots[i]; v != 0 {
		s.arena[uint32(v)-1] |= bits
		return uint32(v) - 1
	}
	off := uint32(len(s.arena))
	s.arena = append(s.arena, bits, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(s.arena[off+1:], uint32(len(name)))
	s.arena = append(s.arena, name...)
	s.slots[i] = h>>32<<32 | uint64(off+1)
	s.n++
	if 2*s.n > len(s.slots) {
		s.grow()
	}
	return off
}

func (s *nameSet) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	for _, v := range old {
		if v != 0 {
			key := s.key(uint32(v) - 1)
			s.slots[s.findHash(key, maphash.Bytes(s.seed, key))] = v
		}
	}
}

// lookup returns name's offset, if the set holds it.
func (s *nameSet) lookup(name string) (uint32, bool) {
	i, _ := s.find([]byte(name))
	v := s.slots[i]
	return uint32(v) - 1, v != 0
}

func (s *nameSet) bits(off uint32) uint8 { return s.arena[off] }

func (s *nameSet) name(off uint32) string { return string(s.key(off)) }
