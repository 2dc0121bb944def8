//go:build amd64

package dispatch

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
)

// pool holds real encodings of instructions Go emits near function entries,
// with 0xAA where a displacement is random.
var pool = []string{
	"c3", "90", "55", "5d", "4889e5", "4883ec10", "4883c410", "493b6610", "76aa", "75aa", "74aa",
	"ebaa", "488b00", "48ffc0", "31c0", "0fb64017", "488b05aaaaaaaa", "e8aaaaaaaa", "4c8d642488",
	"4889442408", "8b4068", "83e001", "4801d8", "8400", "0f1f440000", "6690", "e9aaaaaaaa",
	"4c8da424f0fcffff", "4d3b6610", "0f86aaaaaaaa", "4989e4", "4981ec18380100", "833dd3c9670100",
}

// randomFunc builds a function from pool instructions (or, sometimes, from
// random bytes) at a random 8-aligned entry, with random padding.
func randomFunc(rng *rand.Rand) Func {
	var code []byte
	if rng.IntN(8) == 0 {
		code = make([]byte, 1+rng.IntN(24))
		for i := range code {
			code[i] = byte(rng.Uint32())
		}
	} else {
		for n := 1 + rng.IntN(8); n > 0; n-- {
			b, _ := hex.DecodeString(pool[rng.IntN(len(pool))])
			for i := range b {
				if b[i] == 0xaa {
					b[i] = byte(rng.Uint32())
				}
			}
			code = append(code, b...)
		}
	}
	pad := rng.IntN(32)
	b := append(code, make([]byte, pad)...)
	for i := len(code); i < len(b); i++ {
		b[i] = 0xCC
	}
	entry := uintptr(0x400000 + rng.IntN(0x2000000)&^7)
	if rng.IntN(4) == 0 { // a PIE-like high load address
		entry += 0x555555000000
	}
	return Func{Name: "random", Entry: entry, Size: len(code), Bytes: b}
}

// TestPlanProperty: for any function the planner accepts, the patch keeps
// every interior boundary, checked by re-decoding, and the site is well
// formed; the planner never panics.
func TestPlanProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	accepted := map[Tactic]int{}
	refused := map[Reason]int{}
	for range 20000 {
		f := randomFunc(rng)
		mode := SiteMode
		if rng.IntN(5) == 0 {
			mode = CallMode
		}
		pl := NewPlanner(&Simulated{Taken: []Range{{f.Entry &^ 0xfffff, f.Entry + 0x1000000}}}, fakeDispatcher, fakeCallDispatcher)
		p, err := pl.Plan(f, mode)
		if err != nil {
			var re *RefusalError
			if !errors.As(err, &re) {
				t.Fatalf("% x: untyped error %v", f.Bytes, err)
			}
			refused[re.Reason]++
			continue
		}
		accepted[p.Tactic]++
		checkPatch(t, f, p)
		if err := Verify(f, p); err != nil {
			t.Fatalf("% x: Verify: %v", f.Bytes, err)
		}
	}
	t.Logf("accepted %v, refused %v", accepted, refused)
	for _, tac := range Tactics() {
		if accepted[tac] == 0 {
			t.Errorf("no random function used %v: the generator misses a shape", tac)
		}
	}
}

// FuzzPlan: arbitrary bytes never panic the planner, and whatever it accepts
// passes the independent boundary check.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{"493b6610764a554889e54883ec10", "c3", "48ffc0c3", "904801d8c3", "554889e5e877de02004885c07406488b08488b015dc3", "4989e44981ec183801000f82a9000000", "90ebfd"} {
		b, _ := hex.DecodeString(s)
		f.Add(b, uint8(16), uint8(0), false)
		f.Add(b, uint8(0), uint8(8), true)
	}
	f.Fuzz(func(t *testing.T, code []byte, pad, entryLow uint8, call bool) {
		if len(code) == 0 || len(code) > 4096 {
			return
		}
		b := append(append([]byte(nil), code...), make([]byte, pad%64)...)
		for i := len(code); i < len(b); i++ {
			b[i] = 0xCC
		}
		fn := Func{Name: "fuzz", Entry: 0x401000 + uintptr(entryLow), Size: len(code), Bytes: b}
		mode := SiteMode
		if call {
			mode = CallMode
		}
		pl := NewPlanner(&Simulated{Taken: []Range{{0x400000, 0x3000000}}}, fakeDispatcher, fakeCallDispatcher)
		pl.NilFault = fakeNilFault
		if tr, err := pl.PlanTrampoline(fn); err == nil {
			if len(disassemble(t, tr.Code, tr.Addr, fn.Entry)) == 0 {
				t.Fatal("empty trampoline")
			}
		} else if !errors.Is(err, ErrUnpatchable) && !errors.Is(err, ErrNoRelay) {
			t.Fatalf("untyped trampoline refusal %v", err)
		}
		p, err := pl.Plan(fn, mode)
		if err != nil {
			var re *RefusalError
			if !errors.As(err, &re) || !errors.Is(err, ErrUnpatchable) && !errors.Is(err, ErrNoRelay) {
				t.Fatalf("untyped refusal %v", err)
			}
			return
		}
		checkPatch(t, fn, p)
	})
}
