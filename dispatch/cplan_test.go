//go:build linux && amd64

package dispatch

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard"
)

// seedOne is the seed's `one` as gcc -O0 -fno-omit-frame-pointer emits it:
// push rbp; mov rbp,rsp; mov eax,0x2a; pop rbp; ret.
const seedOne = "554889e5b82a0000005dc3"

// C functions from gcc 12 (Debian), at every alignment gcc -O0 gives them
// (it aligns functions to 1), with the padding bytes that follow before
// the next symbol. want is "tactic offset pins" or "refused reason".
var cCases = []struct {
	name  string
	entry uintptr
	code  string
	pad   string
	want  string
}{
	// Entry at 8k: at +0 the rel32 pins b8e58948, 1.1 GiB below a non-PIE
	// binary: no window. Past push rbp the mov eax pins 2ab8xxxx.
	{"seed-one-mod8=0", 0x401000, seedOne, "", "past-push-rbp 1 2ab8xxxx"},
	{"seed-one-mod8=1", 0x401001, seedOne, "", "refused quadword"},
	{"seed-one-mod8=2", 0x401002, seedOne, "", "refused quadword"},
	{"seed-one-mod8=3", 0x401003, seedOne, "", "refused quadword"},
	{"seed-one-mod8=4", 0x401004, seedOne, "", "refused quadword"},
	// Past push rbp; mov rbp,rsp the 5-byte mov eax lies in the quadword
	// [+8-r, +16-r), inside the 11 bytes: rel32 free.
	{"seed-one-mod8=5", 0x401005, seedOne, "", "past-frame 4 xxxxxxxx"},
	// The seed's own address, 0x400b56.
	{"seed-one-at-0x400b56", 0x400b56, seedOne, "", "past-frame 4 xxxxxxxx"},
	{"seed-one-mod8=7", 0x401007, seedOne, "", "past-push-rbp 1 2ab8xxxx"},
	// The same bytes with padding that no symbol covers: int3 is free room.
	{"seed-one-mod8=4-int3-padding", 0x401004, seedOne, "cc", "past-frame 4 xxxxxxxx"},
	// gcc's default -fcf-protection puts endbr64 first.
	// At 8k the push rbp pins the top byte only: 1.3 GiB up.
	{"endbr64-frame-mod8=0", 0x401000, "f30f1efa554889e5b82a0000005dc3", "", "punned-jump 0 55xxxxxx"},
	{"endbr64-frame-mod8=1", 0x401001, "f30f1efa554889e5b82a0000005dc3", "", "past-frame 8 xxxxxxxx"},
	{"endbr64-frame-mod8=3", 0x401003, "f30f1efa554889e5b82a0000005dc3", "", "past-push-rbp 5 2ab8xxxx"},
	// Past endbr64 the rel32 would pin b8e58948 (no window): past push rbp.
	{"endbr64-frame-mod8=4", 0x401004, "f30f1efa554889e5b82a0000005dc3", "", "past-push-rbp 5 2ab8xxxx"},
	// endbr64 then a 5-byte mov: past-endbr64 leaves rel32 free.
	{"endbr64-leaf-mod8=4", 0x401004, "f30f1efab82a000000c3", "cccccc", "past-endbr64 4 xxxxxxxx"},
	// -O2 leaf, 6 bytes, then gcc's multi-byte nop padding.
	{"O2-leaf-nop-padding", 0x401010, "b82a000000c3", "662e0f1f840000000000", "entry-jump 0 xxxxxxxx"},
	// The same leaf followed by code of a symbol the table misses (a
	// stripped .so): not padding, so the quadword does not fit.
	{"O2-leaf-code-after", 0x401010, "b82a000000c3", "554889e5", "refused quadword"},
	// A loop back to the entry: no patch point before it.
	{"loop-to-entry", 0x401000, "ffcf75fcc3", "cccccccccccc", "refused back-edge"},
}

func cFunc(t *testing.T, name string, entry uintptr, code, pad string) Func {
	t.Helper()
	c, err := hex.DecodeString(code)
	if err != nil {
		t.Fatal(err)
	}
	p, err := hex.DecodeString(pad)
	if err != nil {
		t.Fatal(err)
	}
	b := append(c, p[:CPadding(p)]...)
	return Func{Name: name, Entry: entry, Size: len(c), Bytes: b}
}

func TestPlanC(t *testing.T) {
	for _, tc := range cCases {
		t.Run(tc.name, func(t *testing.T) {
			f := cFunc(t, tc.name, tc.entry, tc.code, tc.pad)
			pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
			cp, err := pl.PlanC(f)
			want := strings.Fields(tc.want)
			if want[0] == "refused" {
				var re *RefusalError
				if !errors.As(err, &re) || string(re.Reason) != want[1] || !errors.Is(err, ErrUnpatchable) {
					t.Fatalf("got %v, want refusal %s wrapping ErrUnpatchable", err, want[1])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := cp.Patch()
			got := fmt.Sprintf("%v %d %v", p.Tactic, p.Offset, p.Pins)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			checkPatch(t, f, p)
			if err := Verify(f, p); err != nil {
				t.Fatal(err)
			}
			checkCSite(t, p)
		})
	}
}

// checkCSite decodes a C site: [pop rbp;] call cdispatcher (rel32, or
// through the slot at the end of the site); jmp r11; then the route
// pointer. The key is the call's return address.
func checkCSite(t *testing.T, p *Patch) {
	t.Helper()
	var ops []string
	off := 0
	for len(ops) < 3 && off < len(p.SiteCode) {
		in, err := x86asm.Decode(p.SiteCode[off:], 64)
		if err != nil {
			t.Fatalf("site % x: %v", p.SiteCode, err)
		}
		s := in.Op.String()
		end := p.Site + uintptr(off+in.Len)
		switch a := in.Args[0].(type) {
		case x86asm.Rel:
			s += fmt.Sprintf(" %#x", end+uintptr(int64(a)))
		case x86asm.Mem:
			slot := int(end-p.Site) + int(a.Disp)
			if a.Base != x86asm.RIP || slot+8 > len(p.SiteCode) {
				t.Fatalf("site % x: %v does not read a slot of the site", p.SiteCode, in)
			}
			s += fmt.Sprintf(" %#x", binary.LittleEndian.Uint64(p.SiteCode[slot:]))
		case nil:
		default:
			s += " " + a.String()
		}
		ops = append(ops, s)
		off += in.Len
		if in.Op == x86asm.CALL && p.Key != end {
			t.Fatalf("key %#x, want the call's return address %#x", p.Key, end)
		}
		if in.Op == x86asm.JMP {
			break
		}
	}
	want := []string{fmt.Sprintf("CALL %#x", switchboard.CDispatcherPC()), "JMP R11"}
	if p.Tactic == PastPushRBP || p.Tactic == PastFrame {
		want = append([]string{"POP RBP"}, want...)
	}
	if strings.Join(ops, "; ") != strings.Join(want, "; ") {
		t.Fatalf("site % x = %q, want %q", p.SiteCode, ops, want)
	}
	if p.Key+switchboard.CSiteRouteOffset != p.Site+uintptr(off) || len(p.SiteCode)-off < 8 {
		t.Fatalf("route pointer at +%d of % x, want right after jmp r11", off, p.SiteCode)
	}
}

// TestCSiteFar: a C function of a shared object mapped far from the
// executable gets a site near itself that calls cdispatcher through the
// slot at its end; one near the executable calls it with rel32.
func TestCSiteFar(t *testing.T) {
	for _, tc := range []struct {
		entry uintptr
		far   bool
	}{
		{0x7f3a12345000, true},
		{switchboard.CDispatcherPC() &^ 0xfff, false},
	} {
		f := cFunc(t, "lib_answer", tc.entry, "554889e5b8050000005dc3", "cccccccccc")
		space := &Simulated{Taken: []Range{{tc.entry &^ 0xfffff, tc.entry&^0xfffff + 0x200000}}}
		pl := NewPlanner(space, fakeDispatcher, fakeCallDispatcher)
		cp, err := pl.PlanC(f)
		if err != nil {
			t.Fatal(err)
		}
		p := cp.Patch()
		checkCSite(t, p)
		if d := int64(p.Site) - int64(tc.entry); d < -(1<<31) || d > 1<<31 {
			t.Fatalf("site %#x out of rel32 reach of %#x", p.Site, tc.entry)
		}
		if far := bytes.Contains(p.SiteCode[:3], []byte{0xFF, 0x15}); far != tc.far {
			t.Fatalf("entry %#x: site % x, want the slot form %v", tc.entry, p.SiteCode, tc.far)
		}
	}
}

func TestCPadding(t *testing.T) {
	for _, tc := range []struct {
		pad  string
		want int
	}{
		{"", 0},
		{"cccccc", 3},
		{"90cc", 2},
		{"662e0f1f8400000000000f1f4000", 14},
		{"0f1f00554889e5", 3},
		{"f30f1efa", 0}, // endbr64 opens a function
		{"55", 0},
	} {
		b, _ := hex.DecodeString(tc.pad)
		if got := CPadding(b); got != tc.want {
			t.Errorf("CPadding(%s) = %d, want %d", tc.pad, got, tc.want)
		}
	}
}

// TestCTrampoline: the seed's trampoline copies push rbp; mov rbp,rsp;
// mov eax,0x2a and jumps back to the pop rbp.
func TestCTrampoline(t *testing.T) {
	f := cFunc(t, "one", 0x400b56, seedOne, "")
	pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
	cp, err := pl.PlanC(f)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := pl.PlanCTrampoline(f, cp)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for off := 0; off < len(tr.Code); {
		in, err := x86asm.Decode(tr.Code[off:], 64)
		if err != nil {
			t.Fatal(err)
		}
		s := in.String()
		if r, ok := in.Args[0].(x86asm.Rel); ok {
			s = fmt.Sprintf("JMP entry+%#x", tr.Addr+uintptr(off+in.Len)+uintptr(int64(r))-f.Entry)
		}
		got = append(got, s)
		off += in.Len
	}
	want := "PUSH RBP; MOV RBP, RSP; MOV EAX, 0x2a; JMP entry+0x9"
	if strings.Join(got, "; ") != want {
		t.Fatalf("trampoline %q, want %q", got, want)
	}
}

// TestCTrampolineRefusesCall: when the patch point is a call (past-frame
// over push rbp; mov rbp,rsp; call), the trampoline would have to copy the
// call: refused, typed, while the patch itself is fine.
func TestCTrampolineRefusesCall(t *testing.T) {
	f := cFunc(t, "calls", 0x401005, "554889e5e8f0ffffff5dc3", "")
	pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
	cp, err := pl.PlanC(f)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Patch().Tactic != PastFrame {
		t.Fatalf("tactic %v, want past-frame", cp.Patch().Tactic)
	}
	_, err = pl.PlanCTrampoline(f, cp)
	var re *RefusalError
	if !errors.As(err, &re) || re.Reason != ReasonTrampoline || !errors.Is(err, ErrUnpatchable) {
		t.Fatalf("PlanCTrampoline = %v, want a no-trampoline refusal", err)
	}
}
