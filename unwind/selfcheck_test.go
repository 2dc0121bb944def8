package unwind

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// TestSelfCheck: the check passes on this binary, and every compiled
// function of the table, not only the sample, agrees with the runtime and
// the live text (run under -race and -buildmode=pie too, where the table
// lists C code and the binary loads high).
func TestSelfCheck(t *testing.T) {
	if err := SelfCheck(); err != nil {
		t.Fatal(err)
	}
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range im.pcln.nfunc - 1 {
		if im.pcln.u32(im.pcln.fn(i), fieldPCSP) == 0 {
			continue
		}
		n++
		if err := im.checkFunc(i); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d of %d table entries compared with the runtime", n, im.pcln.nfunc)
}

// TestSelfCheckFailsClosed: a table read with the wrong layout, as a
// future toolchain's would be, fails the check. Each case corrupts a copy
// of this binary's own table the way a layout change would mislead the
// reader.
func TestSelfCheckFailsClosed(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	// eachFunc rewrites one uint32 field of every _func.
	eachFunc := func(field int, f func(tab *pclntab, fn []byte) uint32) func(*pclntab) {
		return func(tab *pclntab) {
			for i := range tab.nfunc {
				fn := tab.fn(i)
				binary.LittleEndian.PutUint32(fn[4*field:], f(tab, fn))
			}
		}
	}
	cases := []struct {
		name    string
		corrupt func(*pclntab)
	}{
		{"names one byte off", eachFunc(fieldNameOff, func(tab *pclntab, fn []byte) uint32 { return tab.u32(fn, fieldNameOff) + 1 })},
		{"pcsp field moved (pcfile read instead)", eachFunc(fieldPCSP, func(tab *pclntab, fn []byte) uint32 { return tab.u32(fn, fieldPCSP+1) })},
		{"pcsp field moved (args read instead)", eachFunc(fieldPCSP, func(tab *pclntab, fn []byte) uint32 { return tab.u32(fn, 2) })},
		{"no pc tables found", eachFunc(fieldPCSP, func(*pclntab, []byte) uint32 { return 0 })},
		{"entries 32 bytes off", func(tab *pclntab) {
			for i := range tab.nfunc + 1 {
				binary.LittleEndian.PutUint32(tab.functab[8*i:], tab.entryOff(i)+32)
			}
		}},
		{"functab pairs swapped", func(tab *pclntab) {
			for i := 0; i+1 < tab.nfunc; i += 2 {
				a, b := tab.functab[8*i:8*i+8], tab.functab[8*i+8:8*i+16]
				var tmp [8]byte
				copy(tmp[:], a)
				copy(a, b)
				copy(b, tmp[:])
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, err := parsePclntab(slices.Clone(im.pcln.data), im.pcln.textStart)
			if err != nil {
				t.Fatal(err)
			}
			c.corrupt(tab)
			bad := &Image{Path: im.Path, Bias: im.Bias, live: true, file: im.file, pcln: tab}
			err = bad.check(selfAnchors())
			if !errors.Is(err, ErrSelfCheck) {
				t.Fatalf("check passed a corrupted table: %v", err)
			}
			t.Log(err)
		})
	}

	t.Run("unknown table version", func(t *testing.T) {
		data := slices.Clone(im.pcln.data)
		data[0] = 0xf2 // the magic a next format would take
		if _, err := parsePclntab(data, 0); !errors.Is(err, errPCLN) {
			t.Fatalf("parsed a table of unknown version: %v", err)
		}
	})
}
