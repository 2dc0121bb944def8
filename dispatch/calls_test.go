package dispatch

import (
	"slices"
	"testing"
)

// TestSteps decodes a real promoted-method wrapper, (*Outer).M calling
// (*Inner).M, as the compiler emits it with -l.
func TestSteps(t *testing.T) {
	code := []byte{
		0x49, 0x3b, 0x66, 0x10, // cmp rsp, [r14+0x10]
		0x76, 0x0f, // jbe +15
		0x55,             // push rbp
		0x48, 0x89, 0xe5, // mov rbp, rsp
		0x48, 0x83, 0xec, 0x08, // sub rsp, 8
		0xe8, 0x00, 0x01, 0x00, 0x00, // call +0x100
		0xc9,                         // leave
		0xc3,                         // ret
		0xe8, 0x10, 0x00, 0x00, 0x00, // call +0x10 (morestack)
		0xeb, 0xe4, // jmp entry
	}
	const pc = 0x1000
	insts, targets := Steps(code, pc)
	if want := []uintptr{0x1000, 0x1004, 0x1006, 0x1007, 0x100a, 0x100e, 0x1013, 0x1014, 0x1015, 0x101a}; !slices.Equal(insts, want) {
		t.Errorf("instructions at %#x, want %#x", insts, want)
	}
	if want := []uintptr{0x1113, 0x102a, 0x1000}; !slices.Equal(targets, want) {
		t.Errorf("targets %#x, want %#x", targets, want)
	}
	if _, targets := Steps([]byte{0xe8, 0x00}, pc); targets != nil {
		t.Errorf("truncated call decoded: %#x", targets)
	}
}
