package unwind

import (
	"fmt"
	"testing"
)

// TestNameSet: the set agrees with a map through growth, bits OR in, and
// names are kept exactly (empty, long, alike).
func TestNameSet(t *testing.T) {
	s := newNameSet(1)
	want := map[string]uint8{}
	for i := range 20_000 {
		name := fmt.Sprintf("pkg%d.F%d", i%97, i)
		if i%7 == 0 {
			name = ""
		}
		if i%1000 == 0 {
			name = string(make([]byte, 70_000)) + name
		}
		bits := uint8(1 << (i % 3))
		at := s.add([]byte(name), bits)
		want[name] |= bits
		if got := s.name(at); got != name {
			t.Fatalf("name(add(%.20q)) = %.20q", name, got)
		}
	}
	if s.n != len(want) {
		t.Fatalf("%d names, want %d", s.n, len(want))
	}
	for name, bits := range want {
		at, ok := s.lookup(name)
		if !ok || s.bits(at) != bits {
			t.Fatalf("%.20q: found %v, bits %b; want %b", name, ok, s.bits(at), bits)
		}
	}
	for _, name := range []string{"pkg1.F", "pkg1.F10000000", "x"} {
		if _, ok := s.lookup(name); ok {
			t.Errorf("found %q, never added", name)
		}
	}
}
