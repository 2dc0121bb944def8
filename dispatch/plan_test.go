package dispatch

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// image is the non-PIE layout the table cases are planned against.
var image = []Range{{0x400000, 0x3000000}}

// Stand-in dispatcher addresses inside the image.
const fakeDispatcher, fakeCallDispatcher, fakeSlotDispatcher = 0x401000, 0x401040, 0x4010c0

type prologueCase struct {
	line  int
	name  string
	fn    Func
	mode  Mode
	want  []string
	input string
}

func readPrologues(t *testing.T) []prologueCase {
	t.Helper()
	f, err := os.Open("../testdata/prologues.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []prologueCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 6 {
			t.Fatalf("prologues.txt:%d: %d columns", n, len(cols))
		}
		entry, err1 := strconv.ParseUint(cols[1], 0, 64)
		code, err2 := hex.DecodeString(cols[3])
		pad, err3 := strconv.Atoi(cols[4])
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("prologues.txt:%d: %v", n, err)
		}
		b := append(code, make([]byte, pad)...)
		for i := len(code); i < len(b); i++ {
			b[i] = 0xCC
		}
		mode := SiteMode
		if cols[2] == "call" {
			mode = CallMode
		}
		out = append(out, prologueCase{
			line: n, name: cols[0], mode: mode, want: strings.Fields(cols[5]), input: cols[3],
			fn: Func{Name: cols[0], Entry: uintptr(entry), Size: len(code), Bytes: b},
		})
	}
	return out
}

func TestPrologues(t *testing.T) {
	cases := readPrologues(t)
	if len(cases) < 20 {
		t.Fatalf("only %d cases read", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, fakeDispatcher, fakeCallDispatcher)
			pl.SlotDispatcher = fakeSlotDispatcher
			p, err := pl.Plan(tc.fn, tc.mode)
			if tc.want[0] == "refused" {
				var re *RefusalError
				if !errors.As(err, &re) {
					t.Fatalf("line %d: got patch %v, err %v; want refusal %s", tc.line, p, err, tc.want[1])
				}
				if string(re.Reason) != tc.want[1] {
					t.Fatalf("line %d: refused for %s (%v), want %s", tc.line, re.Reason, err, tc.want[1])
				}
				if !errors.Is(err, ErrUnpatchable) && !errors.Is(err, ErrNoRelay) {
					t.Fatalf("refusal %v wraps neither sentinel", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("line %d: %v", tc.line, err)
			}
			got := []string{p.Tactic.String(), strconv.Itoa(p.Offset), hex.EncodeToString(p.Bytes), p.Pins.String()}
			if got[0] != tc.want[0] || got[1] != tc.want[1] || got[3] != tc.want[3] || !matchHex(got[2], tc.want[2]) {
				t.Fatalf("line %d: got %q, want %q", tc.line, got, tc.want)
			}
			checkPatch(t, tc.fn, p)
			checkSite(t, p, tc.fn)
		})
	}
}

// matchHex compares hex strings where want may hold ".." wildcards.
func matchHex(got, want string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if want[i] != '.' && want[i] != got[i] {
			return false
		}
	}
	return true
}

// checkPatch re-checks a patch without the planner's bookkeeping: the patch
// decodes as one branch to the site through rel32 the pins allow, it stays in
// one aligned quadword of the function's own bytes, and every original
// instruction boundary inside it still decodes as the original instruction.
func checkPatch(t *testing.T, f Func, p *Patch) {
	t.Helper()
	start := f.Entry + uintptr(p.Offset)
	end := start + uintptr(len(p.Bytes))
	if q := start &^ 7; end > q+8 || q < f.Entry || q+8 > f.Entry+uintptr(len(f.Bytes)) {
		t.Fatalf("patch [%#x,%#x) leaves its quadword or the function", start, end)
	}
	in, err := x86asm.Decode(p.Bytes, 64)
	if err != nil || in.Len != len(p.Bytes) {
		t.Fatalf("patch % x: %v, len %d", p.Bytes, err, in.Len)
	}
	op := map[Mode]x86asm.Op{SiteMode: x86asm.JMP, CallMode: x86asm.CALL}[p.Mode]
	rel, _ := in.Args[0].(x86asm.Rel)
	if in.Op != op || end+uintptr(int64(rel)) != p.Site {
		t.Fatalf("patch % x = %v, want %v to %#x", p.Bytes, in, op, p.Site)
	}
	if !p.Pins.Allows(int32(rel)) {
		t.Fatalf("rel32 %#x breaks pins %v", uint32(rel), p.Pins)
	}
	img := append(append([]byte(nil), f.Bytes...), make([]byte, 16)...)
	copy(img[p.Offset:], p.Bytes)
	code := f.Bytes[:f.Size]
	// An eviction chain: each jump starts inside the one before and
	// agrees with every byte already written.
	evicted := map[int]bool{}
	prev, written := p.Offset+len(p.Bytes)-5, p.Offset+len(p.Bytes)
	for ev := p.Evict; ev != nil; ev = ev.Next {
		if ev.Offset <= prev || ev.Offset >= prev+5 {
			t.Fatalf("eviction at +%d is not inside the jump at +%d", ev.Offset, prev)
		}
		evicted[ev.Offset] = true
		for i, b := range ev.Jump {
			if at := ev.Offset + i; at < written && img[at] != b {
				t.Fatalf("eviction jump % x at +%d disagrees with the bytes written before it", ev.Jump, ev.Offset)
			}
		}
		copy(img[ev.Offset:], ev.Jump)
		written = max(written, ev.Offset+len(ev.Jump))
		if e := f.Entry + uintptr(ev.Offset+len(ev.Jump)); e > end {
			end = e
		}
		// One aligned quadword, or one aligned octoword of the function's.
		if q := start &^ 7; end > q+8 && (q&15 != 0 || end > q+16 || q+16 > f.Entry+uintptr(len(f.Bytes))) {
			t.Fatalf("eviction jump at +%d leaves the aligned octoword", ev.Offset)
		}
		checkEviction(t, f, ev)
		prev = ev.Offset + len(ev.Jump) - 5
	}
	for off := 0; off < len(code); {
		orig, err := decode(code[off:])
		if err != nil {
			t.Fatalf("original +%d: %v", off, err)
		}
		if evicted[off] && p.Offset < off {
			delete(evicted, off) // seen on a boundary
		} else if uintptr(off) > uintptr(p.Offset) && f.Entry+uintptr(off) < end {
			now, err := decode(img[off:])
			if err != nil || now.Len != orig.Len || now.String() != orig.String() || string(img[off:off+orig.Len]) != string(code[off:off+orig.Len]) {
				t.Fatalf("boundary +%d: patched %v (% x), original %v", off, now, img[off:off+orig.Len], orig)
			}
		}
		off += orig.Len
	}
	if len(evicted) > 0 {
		t.Fatalf("evictions %v are not instruction boundaries after the patch point", evicted)
	}
}

// checkEviction runs what a thread resumed at the evicted boundary runs:
// the second jump must lead to a stub holding an instruction that decodes
// as the original one, to the same branch target when it branches, and
// then (unless it returns or jumps) a jump to the next original boundary.
func checkEviction(t *testing.T, f Func, ev *Eviction) {
	t.Helper()
	j, err := x86asm.Decode(ev.Jump, 64)
	rel, _ := j.Args[0].(x86asm.Rel)
	from := f.Entry + uintptr(ev.Offset+len(ev.Jump))
	if err != nil || j.Op != x86asm.JMP || j.Len != len(ev.Jump) || from+uintptr(int64(rel)) != ev.Addr {
		t.Fatalf("eviction jump % x: %v (%v), want jmp to %#x", ev.Jump, j, err, ev.Addr)
	}
	orig, err := x86asm.Decode(f.Bytes[ev.Offset:f.Size], 64)
	if err != nil {
		t.Fatalf("evicted +%d: %v", ev.Offset, err)
	}
	// A memory access runs behind test r,r; je nilFault, r its base.
	code, addr := ev.Code, ev.Addr
	if ev.NilCheck != 0 {
		test, err1 := x86asm.Decode(code, 64)
		je, err2 := x86asm.Decode(code[test.Len:], 64)
		m, _ := orig.Args[1].(x86asm.Mem)
		if m0, ok := orig.Args[0].(x86asm.Mem); ok {
			m = m0
		}
		if err1 != nil || err2 != nil || test.Op != x86asm.TEST || test.Args[0] != ev.NilCheck || test.Args[1] != ev.NilCheck || je.Op != x86asm.JE || m.Base != ev.NilCheck {
			t.Fatalf("stub % x: no nil check of %v before %v", ev.Code, ev.NilCheck, orig)
		}
		code, addr = code[test.Len+je.Len:], addr+uintptr(test.Len+je.Len)
	}
	got, err := x86asm.Decode(code, 64)
	if err != nil {
		t.Fatalf("stub % x: %v", ev.Code, err)
	}
	target := func(in x86asm.Inst, pc uintptr) (uintptr, bool) {
		r, ok := in.Args[0].(x86asm.Rel)
		return pc + uintptr(in.Len) + uintptr(int64(r)), ok
	}
	if ot, ok := target(orig, f.Entry+uintptr(ev.Offset)); ok {
		gt, gok := target(got, addr)
		if !gok || gt != ot || got.Op != orig.Op && !(orig.Op >= x86asm.JA && orig.Op <= x86asm.JS && got.Op == orig.Op) {
			t.Fatalf("stub %v -> %#x, original %v -> %#x", got, gt, orig, ot)
		}
	} else if got.String() != orig.String() || got.Len != orig.Len {
		t.Fatalf("stub starts with %v, original +%d is %v", got, ev.Offset, orig)
	}
	if orig.Op == x86asm.RET || orig.Op == x86asm.JMP {
		if len(code) != got.Len {
			t.Fatalf("stub % x: bytes after the %v", ev.Code, orig.Op)
		}
		return
	}
	back, err := x86asm.Decode(code[got.Len:], 64)
	bt, _ := target(back, addr+uintptr(got.Len))
	if err != nil || back.Op != x86asm.JMP || got.Len+back.Len != len(code) || bt != f.Entry+uintptr(ev.Offset+orig.Len) {
		t.Fatalf("stub % x does not end with a jump back to +%d", ev.Code, ev.Offset+orig.Len)
	}
}

// checkSite decodes the relay site: [pop rbp;] call dispatcher; jmp r12,
// then the route's 8 bytes, in site mode (a slot: int3 to the slot's end,
// its route in the data page); movabs r13, route; jmp callDispatcher in
// call mode; and the key after the call.
func checkSite(t *testing.T, p *Patch, f Func) {
	t.Helper()
	var ops []string
	end := len(p.SiteCode)
	switch {
	case p.slot:
		end = bytes.Index(p.SiteCode, []byte{0x41, 0xFF, 0xE4}) + 3
		if p.RouteAt != -1 || end < 3 || len(bytes.Trim(p.SiteCode[end:], "\xcc")) != 0 || (p.Site+uintptr(len(p.SiteCode)))%slotSize != 0 {
			t.Fatalf("slot % x at %#x: route at %d, or not int3 to the slot's end", p.SiteCode, p.Site, p.RouteAt)
		}
	case p.Mode == SiteMode:
		end = p.RouteAt
		if p.RouteAt+8 != len(p.SiteCode) {
			t.Fatalf("site % x: route at %d, not in its last 8 bytes", p.SiteCode, p.RouteAt)
		}
	}
	for off := 0; off < end; {
		in, err := x86asm.Decode(p.SiteCode[off:], 64)
		if err != nil {
			t.Fatalf("site % x: %v", p.SiteCode, err)
		}
		s := in.Op.String()
		if in.Op == x86asm.MOV && in.Len == 10 {
			if off+2 != p.RouteAt {
				t.Fatalf("stub % x: route at %d, not in the movabs at %d", p.SiteCode, p.RouteAt, off)
			}
			s += " " + in.Args[0].String()
		} else if r, ok := in.Args[0].(x86asm.Rel); ok {
			s += fmt.Sprintf(" %#x", p.Site+uintptr(off+in.Len)+uintptr(int64(r)))
		} else if in.Args[0] != nil {
			s += " " + in.Args[0].String()
		}
		ops = append(ops, s)
		off += in.Len
		if in.Op == x86asm.CALL && p.Key != p.Site+uintptr(off) {
			t.Fatalf("key %#x, want the call's return address %#x", p.Key, p.Site+uintptr(off))
		}
	}
	var want []string
	if p.Mode == SiteMode {
		if p.Tactic == PastPushRBP {
			want = append(want, "POP RBP")
		}
		disp := fakeDispatcher
		if p.slot {
			disp = fakeSlotDispatcher
		}
		want = append(want, fmt.Sprintf("CALL %#x", disp), "JMP R12")
	} else {
		want = []string{"MOV R13", fmt.Sprintf("JMP %#x", fakeCallDispatcher)}
		if p.Key != f.Entry+uintptr(p.Offset+len(p.Bytes)) {
			t.Fatalf("call-mode key %#x, want entry+%d", p.Key, p.Offset+len(p.Bytes))
		}
	}
	if strings.Join(ops, "; ") != strings.Join(want, "; ") {
		t.Fatalf("site % x = %q, want %q", p.SiteCode, ops, want)
	}
}

// TestShortSiteAtPageEnd: hugeFrame's prefixed jump (3E 3E E9) has all
// four rel32 bytes pinned by its SUBQ, so its site has one address, which
// at this entry lies 16 bytes before a page's end. The short site (call
// rel32) fits there and is taken when it reaches the dispatcher; the long
// one (call [rip+hdr], 17 bytes) never fits. Real bytes of Go 1.27.3's
// registry test binary, where the planner fell back to past-scratch.
func TestShortSiteAtPageEnd(t *testing.T) {
	code, err := hex.DecodeString("4989e44981ec3841000072694d3b66107663554889e54881ecb0410000488d7c2408b9340800004889c231c0f348ab31dbeb0e4889d14831d948894cdc0848ffc34881fb340800007ce948899424a841000031c0e8a7feffff488b8c24a841000081e1ff030000480344cc084881c4b04100005dc34889442408e8a19ad0ff488b442408e977ffffff")
	if err != nil {
		t.Fatal(err)
	}
	f := Func{Name: "hugeFrame", Entry: 0x78aea0, Size: len(code), Bytes: append(code, bytes.Repeat([]byte{0xCC}, 7)...)}
	const site = 0x39652ff0 // entry + 7 + 0x38ec8149
	// Beyond rel32 of the site; a variable, so that 32-bit vet accepts it.
	farDispatcher := uint64(0x7ff000000000)
	cases := []struct {
		name       string
		dispatcher uintptr
		want       Tactic
	}{
		{"dispatcher in reach", fakeDispatcher, PrefixedJump},
		{"dispatcher out of reach", uintptr(farDispatcher), PastScratch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := NewPlanner(&Simulated{Taken: append([]Range(nil), image...)}, tc.dispatcher, tc.dispatcher+0x40)
			p, err := pl.Plan(f, SiteMode)
			if err != nil {
				t.Fatal(err)
			}
			if p.Tactic != tc.want {
				t.Fatalf("tactic %v at %#x, want %v", p.Tactic, p.Site, tc.want)
			}
			checkPatch(t, f, p)
			if tc.want != PrefixedJump {
				return
			}
			checkSite(t, p, f)
			if p.Site != site || len(p.SiteCode) != 16 || (p.Site+16)%pageSize != 0 {
				t.Fatalf("site %#x, % x: want the 16-byte short site at %#x, ending its page", p.Site, p.SiteCode, site)
			}
		})
	}
}
