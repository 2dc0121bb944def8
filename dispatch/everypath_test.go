package dispatch

import (
	"encoding/binary"
	"testing"
)

// asm builds x86-64 code at pc one instruction at a time.
type asm struct {
	pc   uintptr
	code []byte
}

func (a *asm) raw(b ...byte) *asm { a.code = append(a.code, b...); return a }

func (a *asm) rel32(op byte, target uintptr) *asm {
	next := a.pc + uintptr(len(a.code)) + 5
	a.code = append(a.code, op, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(a.code[len(a.code)-4:], uint32(int32(target-next)))
	return a
}

func (a *asm) call(target uintptr) *asm { return a.rel32(0xe8, target) }
func (a *asm) jmp(target uintptr) *asm  { return a.rel32(0xe9, target) }

const (
	pcBase    = 0x401000
	proves    = 0x500000 // a Go function outside the runtime
	passes    = 0x600000 // the runtime: racefuncenter, morestack
	noReturns = 0x700000 // runtime.panicIndex
)

func classifyTest(pc uintptr) Callee {
	switch pc {
	case proves:
		return Proves
	case noReturns:
		return NoReturn
	}
	return Passes
}

func TestEveryPathCalls(t *testing.T) {
	at := func() *asm { return &asm{pc: pcBase} }
	for _, tc := range []struct {
		name string
		code []byte
		want bool
	}{
		// makeAdder.func1 of registry's tests (go1.26.8): stack check,
		// call helper, ret; morestack path jumps back to the entry.
		{"closure calling out", []byte{
			0x49, 0x3b, 0x66, 0x10, // cmp rsp, [r14+0x10]
			0x76, 0x24, // jbe morestack
			0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, // push rbp; mov rbp, rsp; sub rsp, 0x10
			0x48, 0x8b, 0x4a, 0x08, 0x48, 0x89, 0x4c, 0x24, 0x08, // mov rcx, [rdx+8]; mov [rsp+8], rcx
			0xe8, 0x24, 0xfb, 0x0f, 0x00, // call proves (rel fixed below)
			0x48, 0x8b, 0x4c, 0x24, 0x08, 0x48, 0x01, 0xc8, // mov rcx, [rsp+8]; add rax, rcx
			0x48, 0x83, 0xc4, 0x10, 0x5d, 0xc3, // add rsp, 0x10; pop rbp; ret
			0x48, 0x89, 0x44, 0x24, 0x08, // mov [rsp+8], rax
			0xe8, 0xac, 0x1f, 0xd4, 0xff, // call passes (morestack)
			0x48, 0x8b, 0x44, 0x24, 0x08, // mov rax, [rsp+8]
			0xeb, 0xc5, // jmp entry
			0xcc,
		}, true},
		{"leaf", at().raw(0x48, 0x89, 0xd8, 0xc3).code, false},
		{"call on one branch only", at().raw(0x48, 0x85, 0xc0, 0x74, 0x05).call(proves).raw(0xc3).code, false},
		{"calls on both branches", at().raw(0x48, 0x85, 0xc0, 0x74, 0x06).call(proves).raw(0xc3).call(proves).raw(0xc3).code, true},
		{"only the runtime", at().call(passes).raw(0xc3).code, false},
		{"panic path", at().raw(0x48, 0x85, 0xc0, 0x73, 0x06).call(proves).raw(0xc3).call(noReturns).raw(0x48, 0x89, 0xd8, 0xc3).code, true},
		{"jump table", at().raw(0xff, 0xe0).code, false},
		{"indirect call", at().raw(0xff, 0xd0, 0xc3).code, false},
		{"tail call", at().raw(0x48, 0x89, 0xd8).jmp(proves).code, true},
		{"jump to the runtime", at().jmp(passes).code, false},
		{"runs off the end", at().raw(0x48, 0x89, 0xd8).code, false},
		{"loop that never returns", at().call(passes).raw(0xeb, 0xf9).code, true},
		{"trap", at().raw(0x0f, 0x0b).code, true},
		{"undecodable", at().raw(0x0f, 0xff).code, false},
	} {
		code := tc.code
		if tc.name == "closure calling out" {
			code = fixClosure(code)
		}
		if got := EveryPathCalls(code, pcBase, classifyTest); got != tc.want {
			t.Errorf("%s: EveryPathCalls = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fixClosure points the real closure's two calls at the test's callees.
func fixClosure(code []byte) []byte {
	c := append([]byte(nil), code...)
	for _, fix := range []struct {
		off    int
		target uintptr
	}{{23, proves}, {47, passes}} {
		binary.LittleEndian.PutUint32(c[fix.off+1:], uint32(int32(fix.target-(pcBase+uintptr(fix.off)+5))))
	}
	return c
}
