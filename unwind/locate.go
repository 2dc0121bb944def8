package unwind

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// pclntabSections are the names linkers give the Go function table:
// .gopclntab, and .data.rel.ro.gopclntab in Go 1.25's PIE binaries.
var pclntabSections = []string{".gopclntab", ".data.rel.ro.gopclntab"}

// pclnHeader is the start of a Go 1.20+ little-endian table on a 64-bit
// target: magic, two zero bytes, instruction quantum 1, pointer size 8.
var pclnHeader = []byte{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8}

// findPclntab returns the bytes of the Go function table and says how it
// found them: by section name; by the runtime.pclntab and
// runtime.epclntab symbols, whatever the section; or, when neither exists,
// by its header inside a PT_LOAD segment, where the runtime itself finds
// it. A header found by scanning must describe a table that fits the
// segment and lists functions in address order.
func findPclntab(f *elf.File, syms []elf.Symbol) (data []byte, how string, err error) {
	for _, name := range pclntabSections {
		if s := f.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
			data, err := s.Data()
			if err != nil {
				return nil, "", fmt.Errorf("section %s: %w", name, err)
			}
			return data, "section " + name, nil
		}
	}
	var start, end uint64
	for _, s := range syms {
		switch s.Name {
		case "runtime.pclntab":
			start = s.Value
		case "runtime.epclntab":
			end = s.Value
		}
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		seg := make([]byte, p.Filesz)
		if _, err := p.ReadAt(seg, 0); err != nil {
			return nil, "", fmt.Errorf("PT_LOAD at %#x: %w", p.Vaddr, err)
		}
		if start != 0 && p.Vaddr <= start && end <= p.Vaddr+p.Filesz && start < end {
			return seg[start-p.Vaddr : end-p.Vaddr], "symbol runtime.pclntab", nil
		}
		if start != 0 {
			continue
		}
		for off := 0; ; off++ {
			i := bytes.Index(seg[off:], pclnHeader)
			if i < 0 {
				break
			}
			off += i
			if plausiblePclntab(seg[off:]) {
				return seg[off:], fmt.Sprintf("header in the PT_LOAD segment at %#x", p.Vaddr), nil
			}
		}
	}
	return nil, "", errors.New("not a Go binary: no Go 1.20+ function table (.gopclntab)")
}

// plausiblePclntab checks a candidate table found by its header: every
// offset of the header lies inside it, and the first function entries
// are in increasing order.
func plausiblePclntab(data []byte) bool {
	if len(data) < 8+8*8 {
		return false
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8+i*8:]) }
	nfunc := word(0)
	if nfunc == 0 || nfunc > uint64(len(data)) {
		return false
	}
	for i := 3; i <= 7; i++ { // word 2, the text start, is left zero
		if word(i) == 0 || word(i) >= uint64(len(data)) {
			return false
		}
	}
	functab := data[word(7):]
	if uint64(len(functab)) < (nfunc+1)*8 {
		return false
	}
	prev := uint32(0)
	for i := range min(nfunc+1, 64) {
		e := binary.LittleEndian.Uint32(functab[8*i:])
		if i > 0 && e <= prev {
			return false
		}
		prev = e
	}
	return true
}
