package dispatch

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/arch/x86/x86asm"
)

// Real functions built by Go 1.26.8 (a small program's main.caller, .big,
// .loadG, .frameLeaf), and synthetic shapes the compiler rarely emits. The
// function's own code is never rewritten: where it sits (the quadword
// layout of its restart jump) no longer matters.
var trampolineCases = []struct {
	name  string
	entry uintptr
	code  string
	pad   int
	// want is the trampoline, one instruction per entry, with branch
	// targets and RIP-relative operands as offsets from the entry, and
	// the nil-fault stub named nilFault.
	want    []string
	refused bool
}{
	{
		name: "stack check", entry: 0x49e300, code: "493b66107624554889e54883ec10488d0c4048894c2408e864ffffff488b4c24084801c84883c4105dc34889442408e88cf5fdff488b442408ebc5", pad: 5,
		want: []string{"CMP RSP, [R14+0x10]", "JMP entry+0x4"},
	},
	{
		// The restart jmp rel8's byte opens the next quadword here; that
		// refused a trampoline while the restart was rewritten.
		name: "stack check, restart rel8 across quadwords", entry: 0x49e306, code: "493b66107624554889e54883ec10488d0c4048894c2408e864ffffff488b4c24084801c84883c4105dc34889442408e88cf5fdff488b442408ebc5", pad: 13,
		want: []string{"CMP RSP, [R14+0x10]", "JMP entry+0x4"},
	},
	{
		name: "huge frame: mov r12,rsp and sub copied", entry: 0x49e340, code: "4989e44981ec183801000f82a90000004d3b66100f869f000000554889e54881ec90380100488d7c2408b9102700004889c231c0f348ab31c0eb0c488d0c1048894cc40848ffc0483d102700007cec48899424883801004889d0e861ffffff488b8c24883801004889ca48c1f93f4889c348b896b20c71ac8bdb684889d648f7ea48c1fa0c4829ca4869ca102700004829ce4881fe10270000731148035cf4084889d84881c4903801005dc348c7c010270000e8e811feff9048894424086690e8bbf4fdff488b442408e931ffffff", pad: 17,
		want: []string{"MOV R12, RSP", "SUB R12, 0x13818", "JMP entry+0xa"},
	},
	{
		// Its restart jmp rel32 straddles two quadwords here (Go 1.27
		// lays out hugeFrame this way): refused while it was rewritten.
		name: "huge frame, restart rel32 across quadwords", entry: 0x49e343, code: "4989e44981ec183801000f82a90000004d3b66100f869f000000554889e54881ec90380100488d7c2408b9102700004889c231c0f348ab31c0eb0c488d0c1048894cc40848ffc0483d102700007cec48899424883801004889d0e861ffffff488b8c24883801004889ca48c1f93f4889c348b896b20c71ac8bdb684889d648f7ea48c1fa0c4829ca4869ca102700004829ce4881fe10270000731148035cf4084889d84881c4903801005dc348c7c010270000e8e811feff9048894424086690e8bbf4fdff488b442408e931ffffff", pad: 17,
		want: []string{"MOV R12, RSP", "SUB R12, 0x13818", "JMP entry+0xa"},
	},
	{
		name: "RIP-relative load", entry: 0x49e2e0, code: "488b05b15a1000c3", pad: 24,
		want: []string{"MOV RAX, [entry+0x105ab8]", "JMP entry+0x7"},
	},
	{
		name: "push rbp first: two instructions copied", entry: 0x49e420, pad: 6,
		code: "554889e54883ec20488d0c24440f1139440f11791031c9eb0e4889ca480fafd0488914cc48ffc14883f9047cec83e003488b04c44883c4205dc3",
		want: []string{"PUSH RBP", "MOV RBP, RSP", "JMP entry+0x4"},
	},
	{name: "ret only", entry: 0x4015c0, code: "c3", pad: 31, want: []string{"RET"}},
	{
		name: "nop then jcc rel8, widened to rel32 (synthetic)", entry: 0x401000, code: "907410c3", pad: 28,
		want: []string{"NOP", "JE entry+0x13", "JMP entry+0x3"},
	},
	{
		// time.Time.UnixMilli: a patch may go past both nops (past-nop at
		// +2), so the copy runs to the end of the bt after them.
		name: "two nops then bt", entry: 0x4f2220, code: "9090480fbae03f7316488d0c00c3", pad: 18,
		want: []string{"NOP", "NOP", "BT RAX, 0x3f", "JMP entry+0x7"},
	},
	{
		// mov eax, [rax+0x68] (a field of a receiver in RAX): checked.
		name: "load through a pointer first: nil check", entry: 0x4015e0, code: "8b406883e001c3", pad: 25,
		want: []string{"TEST RAX, RAX", "JE nilFault", "MOV EAX, [RAX+0x68]", "JMP entry+0x3"},
	},
	{
		// mov r12, rsp; mov rdx, [r9+0x10]: an extended register.
		name: "load through r9 after a scratch write (synthetic)", entry: 0x401000, code: "4989e4498b5110c3", pad: 24,
		want: []string{"TEST R9, R9", "JE nilFault", "MOV R12, RSP", "MOV RDX, [R9+0x10]", "JMP entry+0x7"},
	},
	{
		// mov eax, [rax+rcx*4]: the base alone does not say it faults.
		name: "indexed load through a pointer (synthetic)", entry: 0x401000, code: "8b0488c3", pad: 28, refused: true,
	},
	{
		// mov r12, rax; mov eax, [r12]: the check would test r12 before
		// the copy sets it.
		name: "load through a register the copy writes first (synthetic)", entry: 0x401000, code: "4989c4418b0424c3", pad: 24, refused: true,
	},
	{
		// mov r14, fs:[-8]: assembly functions load g from TLS first.
		name: "TLS load of g", entry: 0x48ffe0, code: "644c8b3425f8ffffffc3", pad: 22,
		// x86asm prints the FS-relative operand without its segment.
		want: []string{"MOV R14, [Reg(0)-0x8]", "JMP entry+0x9"},
	},
	{name: "call first (synthetic)", entry: 0x401000, code: "e800000000c3", pad: 26, refused: true},
	// x86asm reads a VEX operand encoded RIP-relative as an absolute
	// [disp32], with no PCRel: a copy would load other memory.
	{name: "VEX RIP-relative load first: vmovsd xmm0,[rip+0x10] (synthetic)", entry: 0x401000, code: "c5fb100510000000c3", pad: 23, refused: true},
	{name: "VEX RIP-relative operand first: shlx rax,[rip+0x10],rax (synthetic)", entry: 0x401000, code: "c4e2f9f70510000000c3", pad: 22, refused: true},
	{name: "EIP-relative lea first (synthetic)", entry: 0x401000, code: "67488d0510000000c3", pad: 23, refused: true},
	{name: "moffs load first: mov rax,[abs64] (synthetic)", entry: 0x401000, code: "48a11000000000000000c3", pad: 21, refused: true},
}

// fakeNilFault stands in for switchboard.NilFaultPC.
const fakeNilFault = 0x401080

func TestTrampolines(t *testing.T) {
	for _, tc := range trampolineCases {
		t.Run(tc.name, func(t *testing.T) {
			code, err := hex.DecodeString(tc.code)
			if err != nil {
				t.Fatal(err)
			}
			b := append(code, make([]byte, tc.pad)...)
			for i := len(code); i < len(b); i++ {
				b[i] = 0xCC
			}
			f := Func{Name: tc.name, Entry: tc.entry, Size: len(code), Bytes: b}
			pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
			pl.NilFault = fakeNilFault
			tr, err := pl.PlanTrampoline(f)
			if tc.refused {
				var re *RefusalError
				if !errors.As(err, &re) || re.Reason != ReasonTrampoline || !errors.Is(err, ErrUnpatchable) {
					t.Fatalf("got %v, want a no-trampoline refusal", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, disassemble(t, tr.Code, tr.Addr, f.Entry)); diff != "" {
				t.Fatalf("trampoline at %#x (-want +got):\n%s", tr.Addr, diff)
			}
		})
	}
}

// disassemble decodes trampoline code at addr, naming branch targets and
// RIP-relative operands by their offset from entry.
func disassemble(t *testing.T, code []byte, addr, entry uintptr) []string {
	t.Helper()
	var out []string
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			t.Fatalf("trampoline % x at +%d: %v", code, off, err)
		}
		next := addr + uintptr(off+in.Len)
		s := in.Op.String()
		var args []string
		for _, a := range in.Args {
			switch a := a.(type) {
			case nil:
			case x86asm.Rel:
				if to := next + uintptr(int64(a)); to == fakeNilFault {
					args = append(args, "nilFault")
				} else {
					args = append(args, fmt.Sprintf("entry+%#x", to-entry))
				}
			case x86asm.Mem:
				if a.Base == x86asm.RIP {
					args = append(args, fmt.Sprintf("[entry+%#x]", next+uintptr(a.Disp)-entry))
					continue
				}
				args = append(args, a.String())
			default:
				args = append(args, a.String())
			}
		}
		if len(args) > 0 {
			s += " " + strings.Join(args, ", ")
		}
		out = append(out, s)
		off += in.Len
	}
	return out
}

// TestTrampolineKeepsSegment: the TLS load is copied byte for byte, FS
// prefix included (x86asm's text does not show it).
func TestTrampolineKeepsSegment(t *testing.T) {
	code, _ := hex.DecodeString("644c8b3425f8ffffffc3")
	f := Func{Name: "tls", Entry: 0x48ffe0, Size: len(code), Bytes: append(code, make([]byte, 22)...)}
	tr, err := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher).PlanTrampoline(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(tr.Code[:9]); got != "644c8b3425f8ffffff" {
		t.Fatalf("copied % x", tr.Code)
	}
}
