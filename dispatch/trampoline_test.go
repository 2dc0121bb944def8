package dispatch

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/arch/x86/x86asm"
)

// Real functions built by Go 1.26.8 (a small program's main.caller, .big,
// .loadG, .frameLeaf), and two synthetic shapes the compiler rarely emits.
var trampolineCases = []struct {
	name  string
	entry uintptr
	code  string
	pad   int
	// want is the trampoline, one instruction per entry, with branch
	// targets and RIP-relative operands as offsets from the entry.
	want []string
	// restart is the offset of the stack-growth jump redirected to the
	// trampoline, or -1.
	restart int
	writes  int // quadword writes of the redirect, when more than one
	refused bool
}{
	{
		name: "stack check, restart jmp rel8 widened into padding", entry: 0x49e300,
		code:    "493b66107624554889e54883ec10488d0c4048894c2408e864ffffff488b4c24084801c84883c4105dc34889442408e88cf5fdff488b442408ebc5",
		pad:     5,
		want:    []string{"CMP RSP, [R14+0x10]", "JMP entry+0x4"},
		restart: 57,
	},
	{
		// The same function placed so that the widened jmp crosses into
		// the next quadword: that part (padding) is written first.
		name: "restart jmp rel8 widened across quadwords", entry: 0x49e305,
		code:    "493b66107624554889e54883ec10488d0c4048894c2408e864ffffff488b4c24084801c84883c4105dc34889442408e88cf5fdff488b442408ebc5",
		pad:     13,
		want:    []string{"CMP RSP, [R14+0x10]", "JMP entry+0x4"},
		restart: 57,
		writes:  2,
	},
	{
		// Placed so that the old jmp's rel8 byte opens the next quadword:
		// writing that quadword first would change a live jump. Refused.
		name: "restart jmp rel8 split across quadwords", entry: 0x49e306, refused: true,
		code: "493b66107624554889e54883ec10488d0c4048894c2408e864ffffff488b4c24084801c84883c4105dc34889442408e88cf5fdff488b442408ebc5",
		pad:  13,
	},
	{
		name: "huge frame: mov r12,rsp and sub copied, restart jmp rel32", entry: 0x49e340,
		code:    "4989e44981ec183801000f82a90000004d3b66100f869f000000554889e54881ec90380100488d7c2408b9102700004889c231c0f348ab31c0eb0c488d0c1048894cc40848ffc0483d102700007cec48899424883801004889d0e861ffffff488b8c24883801004889ca48c1f93f4889c348b896b20c71ac8bdb684889d648f7ea48c1fa0c4829ca4869ca102700004829ce4881fe10270000731148035cf4084889d84881c4903801005dc348c7c010270000e8e811feff9048894424086690e8bbf4fdff488b442408e931ffffff",
		pad:     17,
		want:    []string{"MOV R12, RSP", "SUB R12, 0x13818", "JMP entry+0xa"},
		restart: 202,
	},
	{
		name: "RIP-relative load", entry: 0x49e2e0, code: "488b05b15a1000c3", pad: 24,
		want: []string{"MOV RAX, [entry+0x105ab8]", "JMP entry+0x7"}, restart: -1,
	},
	{
		name: "push rbp first: two instructions copied", entry: 0x49e420, pad: 6,
		code:    "554889e54883ec20488d0c24440f1139440f11791031c9eb0e4889ca480fafd0488914cc48ffc14883f9047cec83e003488b04c44883c4205dc3",
		want:    []string{"PUSH RBP", "MOV RBP, RSP", "JMP entry+0x4"},
		restart: -1,
	},
	{name: "ret only", entry: 0x4015c0, code: "c3", pad: 31, want: []string{"RET"}, restart: -1},
	{
		name: "nop then jcc rel8, widened to rel32 (synthetic)", entry: 0x401000, code: "907410c3", pad: 28,
		want: []string{"NOP", "JE entry+0x13", "JMP entry+0x3"}, restart: -1,
	},
	{name: "load through a pointer first", entry: 0x4015e0, code: "8b406883e001c3", pad: 25, refused: true},
	{name: "call first (synthetic)", entry: 0x401000, code: "e800000000c3", pad: 26, refused: true},
	{
		// The huge frame again, one byte later: its restart jmp rel32
		// now straddles two quadwords of code.
		name: "restart jmp rel32 across quadwords", entry: 0x49e343, refused: true, pad: 17,
		code: "4989e44981ec183801000f82a90000004d3b66100f869f000000554889e54881ec90380100488d7c2408b9102700004889c231c0f348ab31c0eb0c488d0c1048894cc40848ffc0483d102700007cec48899424883801004889d0e861ffffff488b8c24883801004889ca48c1f93f4889c348b896b20c71ac8bdb684889d648f7ea48c1fa0c4829ca4869ca102700004829ce4881fe10270000731148035cf4084889d84881c4903801005dc348c7c010270000e8e811feff9048894424086690e8bbf4fdff488b442408e931ffffff",
	},
}

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
			if tr.Restart != tc.restart {
				t.Fatalf("restart at +%d, want +%d", tr.Restart, tc.restart)
			}
			checkRedirect(t, f, tr)
			if tc.writes > 0 && len(tr.redirect) != tc.writes {
				t.Fatalf("%d redirect writes, want %d", len(tr.redirect), tc.writes)
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
				args = append(args, fmt.Sprintf("entry+%#x", next+uintptr(int64(a))-entry))
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

// checkRedirect applies the restart redirect's writes to the function's
// bytes, each over the bytes it expects, and checks the result: every
// instruction before the restart is unchanged, and the restart is now one
// jmp rel32 to the trampoline.
func checkRedirect(t *testing.T, f Func, tr *Trampoline) {
	t.Helper()
	if tr.Restart < 0 {
		if len(tr.redirect) != 0 {
			t.Fatalf("%d redirect writes without a restart", len(tr.redirect))
		}
		return
	}
	img := append([]byte(nil), f.Bytes...)
	for _, w := range tr.redirect {
		at := w.addr - f.Entry
		if w.addr&7 != 0 || string(img[at:at+8]) != string(w.old[:]) {
			t.Fatalf("write at %#x: unaligned or expects % x over % x", w.addr, w.old, img[at:at+8])
		}
		copy(img[at:], w.new[:])
	}
	if string(img[:tr.Restart]) != string(f.Bytes[:tr.Restart]) {
		t.Fatal("the redirect changed code before the restart jump")
	}
	in, err := x86asm.Decode(img[tr.Restart:], 64)
	rel, _ := in.Args[0].(x86asm.Rel)
	if err != nil || in.Op != x86asm.JMP || in.Len != 5 || f.Entry+uintptr(tr.Restart+5)+uintptr(int64(rel)) != tr.Addr {
		t.Fatalf("restart is now %v (%v), want jmp rel32 to %#x", in, err, tr.Addr)
	}
	// Every write but the last touches only padding.
	for _, w := range tr.redirect[:len(tr.redirect)-1] {
		if w.addr < f.Entry+uintptr(f.Size) {
			t.Fatalf("write at %#x, before the last, touches code", w.addr)
		}
	}
}

// TestTrampolineRestartOutOfReach: a trampoline placed at the far edge of
// the jump back's reach may be out of reach of the restart jump further
// into the function; planning refuses rather than wrap the rel32.
func TestTrampolineRestartOutOfReach(t *testing.T) {
	code, _ := hex.DecodeString(trampolineCases[0].code)
	const entry = 0x5555_5555_0000
	b := append(code, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC)
	f := Func{Name: "edge", Entry: entry, Size: len(code), Bytes: b}
	pl := NewPlanner(&Simulated{}, fakeDispatcher, fakeCallDispatcher)
	// A page whose first free byte is exactly 2 GiB below the jump back.
	back := uintptr(entry + 4)
	page := (back - 1<<31) &^ (pageSize - 1)
	pg := &relayPage{addr: page}
	pg.take(0, int(back-1<<31-page))
	pl.relay.pages = append(pl.relay.pages, pg)
	tr, err := pl.PlanTrampoline(f)
	if err == nil {
		d := int64(tr.Addr) - int64(entry+uintptr(tr.Restart)+5)
		if d < math.MinInt32 {
			t.Fatalf("restart rel32 wraps: trampoline %#x", tr.Addr)
		}
		checkRedirect(t, f, tr)
		return
	}
	var re *RefusalError
	if !errors.As(err, &re) || re.Reason != ReasonTrampoline {
		t.Fatalf("got %v, want a no-trampoline refusal", err)
	}
}
