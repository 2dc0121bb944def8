package dispatch

import (
	"errors"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestDecoderPanicRefuses: a decoder that panics (x86asm has, on some
// inputs) makes the function unpatchable instead of crashing the program,
// in the planner, the verifier and the trampoline planner alike.
func TestDecoderPanicRefuses(t *testing.T) {
	defer func() { decoder = x86asm.Decode }()
	decoder = func([]byte, int) (x86asm.Inst, error) { panic("index out of range [3] with length 3") }

	b := []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0x48, 0x89, 0xe5, 0xc3}
	if _, err := decode(b); !errors.Is(err, ErrUnpatchable) {
		t.Fatalf("decode: %v, want ErrUnpatchable", err)
	}
	f := Func{Name: "pkg.f", Entry: 0x401100, Size: len(b), Bytes: append(b, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC)}
	pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
	if _, err := pl.Plan(f, SiteMode); !errors.Is(err, ErrUnpatchable) {
		t.Fatalf("Plan: %v, want ErrUnpatchable", err)
	}
	if _, err := pl.PlanTrampoline(f); !errors.Is(err, ErrUnpatchable) {
		t.Fatalf("PlanTrampoline: %v, want ErrUnpatchable", err)
	}

	decoder = x86asm.Decode
	p, err := pl.Plan(f, SiteMode)
	if err != nil {
		t.Fatalf("Plan with the real decoder: %v", err)
	}
	decoder = func([]byte, int) (x86asm.Inst, error) { panic("boom") }
	if err := Verify(f, p); err == nil {
		t.Fatal("Verify accepted a patch it could not decode")
	}
}
