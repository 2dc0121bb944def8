package registry

import (
	"encoding/hex"
	"errors"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestDecodeWrapper decodes real generic wrappers (go1.26.8, from
// `go tool objdump` of a test program, addresses as there) and damaged
// copies of them.
func TestDecodeWrapper(t *testing.T) {
	symbols := map[uintptr]string{
		0x4a0240: "main.Double[go.shape.int]",
		0x49ffe0: "main.(*Box[go.shape.int]).Get",
		0x4a00e0: "main.Pick[go.shape.struct { main.a int; main.b int }]",
		0x47d8c0: "runtime.morestack_noctxt.abi0",
		0x4a1000: "main.Other[go.shape.int]",
		0x907b40: "main.Double[go.shape.int]",
	}
	name := func(pc uintptr) (string, bool) { s, ok := symbols[pc]; return s, ok }
	tests := []struct {
		name  string
		pc    uintptr
		code  string // hex
		shape uintptr
		dict  uintptr
		reg   x86asm.Reg
		err   error
	}{
		{
			name: "main.Double[int]", pc: 0x4a0260,
			code: "493b6610" + "761d" + "55" + "4889e5" + "4883ec10" + "4889c3" + "488d0598170300" + "e8c3ffffff" + "4883c410" + "5d" + "c3" +
				"4889442408" + "e833d6fdff" + "488b442408" + "ebcc",
			shape: 0x4a0240, dict: 0x4a0278 + 0x31798, reg: x86asm.RAX,
		},
		{
			name: "main.Pick[main.P]", pc: 0x4a0100,
			code: "493b6610" + "7629" + "55" + "4889e5" + "4883ec30" + "4189f0" + "4889fe" + "4889cf" + "4889d9" + "4889c3" +
				"488d05fc180300" + "e8b7ffffff" + "4883c430" + "5d" + "c3",
			shape: 0x4a00e0, dict: 0x4a0124 + 0x318fc, reg: x86asm.RAX,
		},
		{
			// A method: the receiver in RAX, the dictionary after it.
			name: "main.(*Box[int]).Get", pc: 0x4a0000,
			code:  "493b6610" + "761b" + "55" + "4889e5" + "4883ec10" + "488d1dcb200300" + "e8c6ffffff" + "4883c410" + "5d" + "90" + "c3",
			shape: 0x49ffe0, dict: 0x4a0015 + 0x320cb, reg: x86asm.RBX,
		},
		{
			// A race build: racefuncenter and an argument reload between
			// the LEA and the call.
			name: "main.Double[int]", pc: 0x907b60,
			code: "493b6610" + "763d" + "55" + "4889e5" + "4883ec18" + "4889442428" + "488b442420" + "e8839dbcff" +
				"488d054cc00e00" + "488b5c2428" + "e8b2ffffff" + "4889442410" + "e8a89dbcff" + "488b442410" + "4883c418" + "5d" + "c3",
			shape: 0x907b40, dict: 0x907b84 + 0x0ec04c, reg: x86asm.RAX,
		},
		{
			// Double[int] with RAX overwritten between the LEA and the call.
			name: "main.Double[int]", pc: 0x4a0260,
			code: "493b6610" + "761d" + "55" + "4889e5" + "4883ec0d" + "488d0598170300" + "4889d8" + "e8c3ffffff" + "4883c410" + "5d" + "c3",
			err:  ErrGeneric,
		},
		{
			// The dictionary loaded before a racefuncenter-like call.
			name: "main.Double[int]", pc: 0x907b60,
			code: "493b6610" + "763d" + "55" + "4889e5" + "4883ec18" + "488d054cc00e00" + "e8839dbcff" + "e8c1ffffff" + "5d" + "c3",
			err:  ErrGeneric,
		},
		{
			// Double[int] with the LEA replaced by a MOV from memory.
			name: "main.Double[int]", pc: 0x4a0260,
			code: "493b6610" + "761d" + "55" + "4889e5" + "4883ec10" + "4889c3" + "488b0598170300" + "e8c3ffffff" + "4883c410" + "5d" + "c3",
			err:  ErrGeneric,
		},
		{
			// Double[int] calling a shape function of another generic.
			name: "main.Double[int]", pc: 0x4a0260,
			code: "493b6610" + "761d" + "55" + "4889e5" + "4883ec10" + "4889c3" + "488d0598170300" + "e8830d0000" + "4883c410" + "5d" + "c3",
			err:  ErrInlined,
		},
		{
			// A wrapper whose shape body was inlined: no call but morestack's.
			name: "main.Double[int]", pc: 0x4a0260,
			code: "493b6610" + "7604" + "4801c0" + "c3" + "e857d6fdff" + "ebf0",
			err:  ErrInlined,
		},
	}
	for _, tt := range tests {
		code, err := hex.DecodeString(tt.code)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeWrapper(tt.name, tt.pc, code, name)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s (%s...): error %v, want %v", tt.name, tt.code[:20], err, tt.err)
			}
			continue
		}
		if err != nil || got.shape != tt.shape || got.dict != tt.dict || got.reg != tt.reg {
			t.Errorf("%s: got shape %#x dict %#x in %v (%v), want %#x %#x in %v", tt.name, got.shape, got.dict, got.reg, err, tt.shape, tt.dict, tt.reg)
		}
	}
}

func TestSkeleton(t *testing.T) {
	for in, want := range map[string]string{
		"main.Double[int]":                              "main.Double[]",
		"main.Double[go.shape.int]":                     "main.Double[]",
		"main.(*Box[go.shape.struct { a [2]int }]).Get": "main.(*Box[]).Get",
		"main.F[main.G[int],string]":                    "main.F[]",
		"main.plain":                                    "main.plain",
	} {
		if got := skeleton(in); got != want {
			t.Errorf("skeleton(%q) = %q, want %q", in, got, want)
		}
	}
	if !isInstantiation("p.F[int]") || isInstantiation("p.F[go.shape.int]") || isInstantiation("p.F") {
		t.Error("isInstantiation")
	}
}
