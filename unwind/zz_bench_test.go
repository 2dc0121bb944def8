package unwind

import (
	"debug/elf"
	"testing"
)

func BenchmarkZZIndex(b *testing.B) {
	f, err := elf.Open("/tmp/fsb/dwarf/firstset")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := readInlineIndex(f, 40000); err != nil {
			b.Fatal(err)
		}
	}
}
