package unwind

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestInlineIndexMatchesReader: the index answers Inlined exactly as the
// full walk with debug/dwarf's reader, which it replaced, for every name
// DWARF describes, and a few it does not: in this test binary, and in the
// cgo fixture, whose C and C++ compile units (gcc's DWARF, names in
// .debug_str) the external linker adds.
func TestInlineIndexMatchesReader(t *testing.T) {
	t.Run("self", func(t *testing.T) {
		im, err := Self()
		if err != nil {
			t.Fatal(err)
		}
		compareInlineIndex(t, im, 1000, 100)
	})
	t.Run("cgo", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds a cgo program")
		}
		im, err := Open(buildFixture(t, "full"))
		if err != nil {
			t.Fatal(err)
		}
		compareInlineIndex(t, im, 1000, 100)
	})
}

func compareInlineIndex(t *testing.T, im *Image, minKnown, minInlined int) {
	d, err := im.file.DWARF()
	if err != nil {
		t.Skipf("no DWARF: %v", err)
	}
	want, err := dwarfInlines(d)
	if err != nil {
		t.Fatal(err)
	}
	x, err := readInlineIndex(im.file, im.pcln.nfunc)
	if err != nil {
		t.Fatal(err)
	}
	inlined := 0
	names := []string{"", "no.such.function", "main.main"}
	for n := range want.known {
		names = append(names, n)
	}
	for n := range want.into {
		names = append(names, n)
	}
	for _, n := range names {
		known, got, into := x.inlined(n)
		wantInlined := want.abstract[n] || len(want.into[n]) > 0
		if known != want.known[n] || known && (got != wantInlined || !slices.Equal(into, want.into[n])) {
			t.Errorf("%q: index says known %v, inlined %v into %q; the reader known %v, inlined %v into %q",
				n, known, got, into, want.known[n], wantInlined, want.into[n])
		}
		if got {
			inlined++
		}
	}
	if len(want.known) < minKnown || inlined < minInlined {
		t.Fatalf("only %d functions described, %d inlined: not a real test", len(want.known), inlined)
	}
	t.Logf("%d names, %d inlined, %d inlined subroutines, %d abstract subprograms", len(want.known), inlined, len(x.sites), len(x.abstract))
}

// TestInlineIndexRefusesRelocatedDWARF: in an object whose DWARF has
// relocations (debug/dwarf's reader applies them), the index, which reads
// the bytes as they are, fails rather than answer.
func TestInlineIndexRefusesRelocatedDWARF(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc:", err)
	}
	dir := t.TempDir()
	src, obj := filepath.Join(dir, "f.c"), filepath.Join(dir, "f.o")
	if err := os.WriteFile(src, []byte("static inline int sq(int x) { return x * x; }\nint f(int x) { return sq(x) + 1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-g", "-O2", "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	f, err := elf.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, err := readInlineIndex(f, 0)
	if err == nil || !strings.Contains(err.Error(), "relocates") {
		t.Fatalf("index %v, error %v; want a refusal of relocated DWARF", x, err)
	}
	t.Log(err)
}
