//go:build linux && amd64

package registry_test

import (
	"reflect"
	"testing"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard/internal/crowd"
	"github.com/switchboard-go/switchboard/registry"
)

// crowdTop is how much low address space the crowded tests take: relay
// windows then need a rel32 top byte of 0x70 or more, as in a binary the
// size of the toolchain's compile.
const crowdTop = 0x70000000

// flags8.transient and lico.xlogue are tiny leaves whose evictions are
// chains once the low address space is taken: the instruction after the
// evicted one pins its jump's rel32 to a taken window, so it is evicted
// too (ir.(*BasicLit).Transient and src.(*Pos).Xlogue in compile).
type flags8 struct {
	_ [0xc]byte
	f uint8
}

//go:noinline
func (n *flags8) transient() bool { return n.f&2 != 0 } // movzx ecx,[rax+0xc]; test cl,2; setne al; ret

type lico struct {
	_ [8]byte
	l uint32
}

//go:noinline
func (p *lico) xlogue() int { return int(p.l>>2) & 3 } // mov eax,[rax+8]; shr eax,2; and eax,3; ret

// crowdedShapes are flip-storm shapes planned only in TestFlipStormCrowded:
// the registry keeps a function's first plan, so no other test may patch
// them first in the uncrowded space.
func crowdedShapes() []shape {
	f8, lc := &flags8{f: 2}, &lico{l: 12}
	return []shape{
		{
			name: "tiny-chain-transient", tactic: "evict-jump",
			call: func(x int) int { return 10*x + b2i(f8.transient()) },
			set: setPair((*flags8).transient, func(n *flags8) bool { return false },
				func(n *flags8) bool { return n.f == 2 }),
			reset: func() error { return registry.Reset((*flags8).transient) },
			want:  func(x int) [3]int { return [3]int{10*x + 1, 10 * x, 10*x + 1} },
		},
		{
			name: "tiny-chain-xlogue", tactic: "evict-jump",
			call: func(x int) int { return 1000*x + lc.xlogue() },
			set: setPair((*lico).xlogue, func(p *lico) int { return 70 },
				func(p *lico) int { return -int(p.l) }),
			reset: func() error { return registry.Reset((*lico).xlogue) },
			want:  func(x int) [3]int { return [3]int{1000*x + 3, 1000*x + 70, 1000*x - 12} },
		},
	}
}

// TestFlipStormCrowded runs the flip storm on victims whose patches are
// eviction chains, with the low address space taken (internal/crowd):
// each Set writes two or three jumps at once (one CMPXCHG16B), while
// three goroutines call the victim, so calls stopped or preempted at any
// boundary of the chain resume through its stubs. First it checks that the
// patch is a chain: at least two instruction boundaries past the entry
// start an eviction jump (E9 or its ds prefix).
func TestFlipStormCrowded(t *testing.T) {
	release, err := crowd.Low(crowdTop)
	if err != nil {
		t.Skip(err)
	}
	defer release()
	// As TestFlipStorm: 4 Ps (goroutines get preempted), the CPU profiler
	// and a GC every millisecond.
	defer stormEnv(t)()
	fns := map[string]any{"tiny-chain-transient": (*flags8).transient, "tiny-chain-xlogue": (*lico).xlogue}
	for _, s := range crowdedShapes() {
		t.Run(s.name, func(t *testing.T) {
			entry := unsafe.Add(unsafe.Pointer(nil), reflect.ValueOf(fns[s.name]).Pointer())
			orig := append([]byte(nil), unsafe.Slice((*byte)(entry), 16)...)
			if err := s.set(1); err != nil {
				t.Fatal(err)
			}
			patched := append([]byte(nil), unsafe.Slice((*byte)(entry), 16)...)
			if err := s.reset(); err != nil {
				t.Fatal(err)
			}
			if r := redirectOf(t, funcName(s)); r.Tactic != s.tactic {
				if why := shapeCaveat(); why != "" {
					t.Skipf("tactic %s, not the chain this storm is for: %s", r.Tactic, why)
				}
				t.Fatalf("tactic %s, want %s", r.Tactic, s.tactic)
			}
			links := 0
			for off := 0; off < 16; {
				in, err := x86asm.Decode(orig[off:], 64)
				if err != nil {
					break
				}
				if off > 0 && patched[off] != orig[off] && (patched[off] == 0xE9 || patched[off] == 0x3E) {
					links++
				}
				off += in.Len
			}
			t.Logf("patch % x over % x: %d evicted boundaries", patched, orig, links)
			if links < 2 {
				t.Fatalf("%d evicted boundaries, want a chain", links)
			}
			storm(t, s, stormTotal(t)/4)
		})
	}
}
