package dispatch

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestFitEvict drives the eviction tactic's fitter alone: which second
// instructions it evicts, which it refuses and why, the pins of the first
// jump, and when the two jumps need an octoword.
func TestFitEvict(t *testing.T) {
	pad := func(entry uintptr, code ...byte) Func {
		b := append([]byte{}, code...)
		for len(b) < 32 {
			b = append(b, 0xCC)
		}
		return Func{Name: "f", Entry: entry, Size: len(code), Bytes: b}
	}
	cases := []struct {
		name  string
		fn    Func
		n     int    // prefixes
		pins  string // the first jump's pins, or "" when refused
		why   string // part of the refusal
		wide  bool   // the second jump runs past +8
		evict int
		// noStub: the stub has no window in a non-PIE image (bytes kept
		// under the second jump pin its rel32 negative).
		noStub bool
		// nilReg: the register the stub nil-checks, "" for none.
		nilReg string
		// depth: how many instructions the chain evicts (0: one); ms,
		// when set, the prefixes of each evicted instruction's jump.
		depth int
		ms    []int
	}{
		{"setne after test", pad(0x401000, 0x48, 0x85, 0xc0, 0x0f, 0x95, 0xc0, 0xc3), 0, "xxe9xxxx", "", false, 3, false, "", 0, nil},
		// ret at b: pinned nowhere but the E9; the stub is the ret.
		{"ret at +3", pad(0x401000, 0x48, 0x89, 0xd8, 0xc3), 0, "xxe9xxxx", "", false, 3, false, "", 0, nil},
		// xor eax,eax (2 bytes): the second jump [2,7) keeps nop and ret
		// at +5 and +6, its rel32's top bytes: c3 90 is negative.
		{"b=2, nop and ret kept", pad(0x401000, 0x31, 0xc0, 0x48, 0x89, 0xd8, 0x90, 0xc3), 0, "xxxxe9xx", "", false, 2, true, "", 0, nil},
		{"wide: and at +4", pad(0x401000, 0x0f, 0xb6, 0x40, 0x38, 0x83, 0xe0, 0x80, 0xc3), 1, "xxe9xxxx", "", true, 4, false, "", 0, nil},
		{"wide needs a 16-byte aligned entry", pad(0x401008, 0x0f, 0xb6, 0x40, 0x38, 0x83, 0xe0, 0x80, 0xc3), 1, "", "aligned 8 bytes", false, 0, false, "", 0, nil},
		{"entry not 8-byte aligned", pad(0x401004, 0x48, 0x85, 0xc0, 0x0f, 0x95, 0xc0, 0xc3), 0, "", "aligned", false, 0, false, "", 0, nil},
		// internal/reflectlite.(*rtype).Size: mov rcx,[rax]; mov rax,[rcx];
		// ret. The load at +3 runs behind a nil check of RCX, which the
		// first instruction loads whole from memory.
		{"a load at b", pad(0x4a5040, 0x48, 0x8b, 0x08, 0x48, 0x8b, 0x01, 0xc3), 0, "xxe9xxxx", "", false, 3, false, "RCX", 0, nil},
		// runtime.UnlockOSThread (go): mov rax,[r14+0x30]; mov ecx,[rax+0x288];
		// the second jump [4,9) is wide.
		{"a wide load at b", pad(0x45dec0, 0x49, 0x8b, 0x46, 0x30, 0x8b, 0x88, 0x88, 0x02, 0x00, 0x00, 0x85, 0xc9, 0x74, 0x36), 1, "xxe9xxxx", "", true, 4, false, "RAX", 0, nil},
		// types2.(*Checker).builtin.func1: mov rcx,[rdx+8]; mov [rcx+0x1c9],al; ret.
		{"a store at b", pad(0xe14520, 0x48, 0x8b, 0x4a, 0x08, 0x88, 0x81, 0xc9, 0x01, 0x00, 0x00, 0xc3), 1, "xxe9xxxx", "", true, 4, false, "RCX", 0, nil},
		// Chains. internal/bytealg.Compare: mov rdx,rsi; mov rsi,rax;
		// jmp cmpbody. Evicting the mov at +3 alone keeps the jmp's E9 and
		// its rel32's low byte b5 under the second jump: negative. The
		// chain evicts the jmp too, re-encoded in its own stub.
		{"chain: mov, then a tail jmp", pad(0x406300, 0x48, 0x89, 0xf2, 0x48, 0x89, 0xc6, 0xe9, 0xb5, 0xfd, 0xff, 0xff), 0, "xxe9xxxx", "", false, 3, true, "", 0, nil},
		{"chain of two: mov, then a tail jmp", pad(0x406300, 0x48, 0x89, 0xf2, 0x48, 0x89, 0xc6, 0xe9, 0xb5, 0xfd, 0xff, 0xff), 0, "xxe9xxxx", "", true, 3, false, "", 2, nil},
		// ir.(*BasicLit).Transient: movzx ecx,[rax+0xc]; test cl,2;
		// setne al; ret. One prefix; the test at +4 and the setne at +7
		// are evicted, the ret at +10 is kept in the third jump's rel32.
		{"chain: test, setne kept", pad(0x651e00, 0x0f, 0xb6, 0x48, 0x0c, 0xf6, 0xc1, 0x02, 0x0f, 0x95, 0xc0, 0xc3), 1, "xxe9xxxx", "", true, 4, true, "", 0, nil},
		{"chain of two: test, setne", pad(0x651e00, 0x0f, 0xb6, 0x48, 0x0c, 0xf6, 0xc1, 0x02, 0x0f, 0x95, 0xc0, 0xc3), 1, "xxe9xxxx", "", true, 4, false, "", 2, nil},
		// net.(*tcpConnWithoutReadFrom).SetWriteBuffer (go): mov rax,[rax];
		// test [rax],al; jmp. The nil check of the loaded pointer, then
		// the tail jump, each in its own stub.
		{"chain of two: nil check, tail jmp", pad(0x6c5180, 0x48, 0x8b, 0x00, 0x84, 0x00, 0xe9, 0xb6, 0xd4, 0xfe, 0xff), 0, "xxe9xxxx", "", true, 3, false, "RAX", 2, nil},
		{"chain of three needs three instructions", pad(0x6c5180, 0x48, 0x8b, 0x00, 0x84, 0x00, 0xe9, 0xb6, 0xd4, 0xfe, 0xff), 0, "", "needs 3 instructions", false, 0, false, "", 3, nil},
		// The next instruction starts past the second jump: no chain.
		{"chain with nothing inside the jump", pad(0x401000, 0x48, 0x89, 0xd8, 0xb9, 0x01, 0x00, 0x00, 0x00, 0xc3), 0, "", "no instruction starts inside", false, 0, false, "", 2, nil},
		// Prefixes on an evicted instruction's jump. src.(*Pos).Xlogue:
		// mov eax,[rax+8]; shr rax,2; and eax,3; ret. Evicting the shr with
		// a plain jump keeps the and's 83 as its rel32's top byte; two ds
		// prefixes move the E9 to +5, so the kept bytes 83 e0 03 pin the
		// low three bytes and the top one is 03, and the entry jump's top
		// two bytes are the prefixes (3e).
		{"link prefixes: shr evicted with two", pad(0x574960, 0x8b, 0x40, 0x08, 0x48, 0xc1, 0xe8, 0x02, 0x83, 0xe0, 0x03, 0xc3), 0, "3e3exxxx", "", true, 3, false, "", 0, []int{2}},
		{"link prefixes: shr evicted with none", pad(0x574960, 0x8b, 0x40, 0x08, 0x48, 0xc1, 0xe8, 0x02, 0x83, 0xe0, 0x03, 0xc3), 0, "xxe9xxxx", "", false, 3, true, "", 0, []int{0}},
		// src.lico.Xlogue: mov eax,eax; shr rax,2; and eax,3; ret: one
		// prefix on the entry jump and two on the second.
		{"link prefixes: both jumps prefixed", pad(0x573720, 0x89, 0xc0, 0x48, 0xc1, 0xe8, 0x02, 0x83, 0xe0, 0x03, 0xc3), 1, "xxe93e3e", "", true, 2, false, "", 0, []int{2}},
		// Two prefixes and E9 need three bytes of the evicted instruction.
		{"link prefixes past the instruction", pad(0x401000, 0x48, 0x85, 0xc0, 0x0f, 0x95, 0xc0, 0xc3), 0, "", "do not fit", false, 0, false, "", 0, []int{0, 1}},
		// runtime.nilfunc: xor eax,eax writes flags the check would clobber.
		{"a store after flags are written", pad(0x479bc0, 0x31, 0xc0, 0xc6, 0x00, 0x00, 0xc3), 0, "", "may write flags", false, 0, false, "", 0, nil},
		// The base is computed: it could be nil plus an offset.
		{"a load through a computed base", pad(0x401000, 0x48, 0x8d, 0x48, 0x08, 0x48, 0x8b, 0x01, 0xc3), 0, "", "computes", false, 0, false, "", 0, nil},
		{"a load through a 32-bit load", pad(0x401000, 0x8b, 0x08, 0x48, 0x8b, 0x01, 0xc3), 0, "", "computes", false, 0, false, "", 0, nil},
		{"a load with an index", pad(0x401000, 0x48, 0x89, 0xd8, 0x48, 0x8b, 0x04, 0xc8, 0xc3), 0, "", "index", false, 0, false, "", 0, nil},
		{"a load past the zero page", pad(0x401000, 0x48, 0x89, 0xd8, 0x48, 0x8b, 0x80, 0x00, 0x10, 0x00, 0x00, 0xc3), 0, "", "zero page", false, 0, false, "", 0, nil},
		{"a load through the stack", pad(0x401000, 0x48, 0x89, 0xd8, 0x48, 0x8b, 0x44, 0x24, 0x08, 0xc3), 0, "", "not a pointer register", false, 0, false, "", 0, nil},
		{"a string instruction", pad(0x401000, 0x48, 0x89, 0xd8, 0x48, 0xa5, 0xc3), 0, "", "string", false, 0, false, "", 0, nil},
		{"a call at b", pad(0x401000, 0x48, 0x89, 0xd8, 0xe8, 0, 0, 0, 0, 0xc3), 0, "", "a call", false, 0, false, "", 0, nil},
		{"RIP-relative at b", pad(0x401000, 0x48, 0x89, 0xd8, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3), 0, "", "PC-relative", false, 0, false, "", 0, nil},
		{"push at b", pad(0x401000, 0x48, 0x89, 0xd8, 0x53, 0x5b, 0xc3), 0, "", "moves SP", false, 0, false, "", 0, nil},
		// push rbp first: the stub would run with the frame's SP.
		{"first instruction moves SP", pad(0x401000, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3), 0, "", "moves SP", false, 0, false, "", 0, nil},
		// The first instruction covers the whole jump: nothing to evict.
		{"no boundary inside", pad(0x401000, 0x48, 0x8b, 0x44, 0x24, 0x08, 0xc3), 0, "", "not inside", false, 0, false, "", 0, nil},
		// A jmp at b is evicted: its stub is re-encoded, not copied.
		{"jmp at b", pad(0x401000, 0x84, 0x00, 0xe9, 0x19, 0xb4, 0xf2, 0xff), 0, "xxxxe9xx", "", false, 2, false, "", 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wide && !wideOK() {
				t.Skip("no CMPXCHG16B on this CPU: no wide evictions")
			}
			pro, err := decodeAll(tc.fn, nil)
			if err != nil {
				t.Fatal(err)
			}
			depth := max(tc.depth, 1)
			ms := tc.ms
			if ms == nil {
				ms = make([]int, depth)
			}
			depth = len(ms)
			c, err := pro.fitEvict(SiteMode, tc.fn.Entry, tc.n, ms)
			if tc.pins == "" {
				var re *RefusalError
				if err == nil || !errors.As(err, &re) || !errors.Is(err, ErrUnpatchable) || !strings.Contains(re.Detail, tc.why) {
					t.Fatalf("got %+v, %v; want a refusal with %q", c, err, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.tactic != EvictJump || len(c.evs) != depth || c.evs[0].in.off != tc.evict || c.pins.String() != tc.pins {
				t.Fatalf("tactic %v, evicts %d at +%d, pins %v; want evict-jump, %d at +%d, %s", c.tactic, len(c.evs), c.evs[0].in.off, c.pins, depth, tc.evict, tc.pins)
			}
			// Plan it alone in a non-PIE image and check what comes out.
			pl := NewPlanner(&Simulated{Taken: []Range{{0x400000, 0x3000000}}}, fakeDispatcher, fakeCallDispatcher)
			if tc.nilReg != "" {
				// Without a nil-fault stub a checked eviction is refused.
				rel1, _ := c.pins.Next(0x05000000)
				if _, err := pl.placeEvictions(tc.fn, c, rel1); err == nil || !strings.Contains(err.Error(), "nil-fault") {
					t.Fatalf("no NilFault: %v, want a refusal", err)
				}
				pl = NewPlanner(&Simulated{Taken: []Range{{0x400000, 0x3000000}}}, fakeDispatcher, fakeCallDispatcher)
				pl.NilFault = fakeNilFault
			}
			rel1, ok := c.pins.Next(0x05000000)
			if !ok {
				t.Fatalf("pins %v allow no rel32 above 0x05000000", c.pins)
			}
			ev, err := pl.placeEvictions(tc.fn, c, rel1)
			if tc.noStub {
				if err == nil || !strings.Contains(err.Error(), "eviction stub") {
					t.Fatalf("stub at %#x, %v; want no window for it", ev.Addr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			last := ev
			for last.Next != nil {
				last = last.Next
			}
			if wide := last.Offset+len(last.Jump) > 8; wide != tc.wide {
				t.Fatalf("last jump ends at +%d: wide %v, want %v", last.Offset+len(last.Jump), wide, tc.wide)
			}
			if ev.Offset != tc.evict || len(ev.Jump) != 5+ms[0] || ev.Jump[ms[0]] != 0xE9 {
				t.Fatalf("eviction %+v", ev)
			}
			// The stub: test r,r; jz nilFault before the copy, when checked.
			var check []string
			if tc.nilReg != "" {
				check = []string{"TEST " + tc.nilReg + ", " + tc.nilReg, "JE nilFault"}
			}
			if got := disassemble(t, ev.Code, ev.Addr, tc.fn.Entry); len(got) < len(check) || !slices.Equal(got[:len(check)], check) || ev.NilCheck.String() != tc.nilReg && tc.nilReg != "" {
				t.Fatalf("stub %q (nil check %v), want it to start with %q", got, ev.NilCheck, check)
			}
			// The whole patch, as Verify sees it: every jump agrees with
			// the bytes written before it, every kept boundary decodes as
			// the original, every stub copies its instruction.
			b := c.bytes(rel1)
			site := tc.fn.Entry + uintptr(len(b)) + uintptr(int64(rel1))
			if err := Verify(tc.fn, &Patch{Offset: 0, Bytes: b, Site: site, Entry: tc.fn.Entry, Evict: ev}); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// TestEvictNilCheckOnlyWhatFaults: an evicted instruction is nil-checked
// only when it touches memory (a prefetch never faults, so its stub must
// not panic on nil), and never after an instruction that sets the flags
// the check's test would clobber.
func TestEvictNilCheckOnlyWhatFaults(t *testing.T) {
	cases := []struct {
		name    string
		code    []byte
		refused bool
	}{
		{"mov rcx,rbx; prefetcht0 [rax]", []byte{0x48, 0x89, 0xd9, 0x0f, 0x18, 0x08, 0xc3}, false},
		{"mov rcx,rbx; prefetchnta [rax+0x40]", []byte{0x48, 0x89, 0xd9, 0x0f, 0x18, 0x40, 0x40, 0xc3}, false},
		{"mov rcx,rbx; prefetchw [rax]", []byte{0x48, 0x89, 0xd9, 0x0f, 0x0d, 0x08, 0xc3}, false},
		{"ABI0: mov rax,[rsp+8]; prefetcht0 [rax]", []byte{0x48, 0x8b, 0x44, 0x24, 0x08, 0x0f, 0x18, 0x08, 0xc3}, false},
		{"cmp rax,rbx; mov rcx,[rax]; je", []byte{0x48, 0x39, 0xd8, 0x48, 0x8b, 0x08, 0x74, 0x01, 0xc3, 0xc3}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn := Func{Name: "f", Entry: 0x401000, Size: len(tc.code), Bytes: append(slices.Clone(tc.code), bytes.Repeat([]byte{0xCC}, 32-len(tc.code))...)}
			pro, err := decodeAll(fn, nil)
			if err != nil {
				t.Fatal(err)
			}
			reg, why := evictNilCheck(pro.insts[:1], pro.insts[1])
			if tc.refused {
				if why == "" {
					t.Fatalf("nil-checks %v after a flag-setting instruction, want a refusal", reg)
				}
				return
			}
			if why != "" || reg != 0 {
				t.Fatalf("%v: nil check %v (%q), want none: a prefetch never faults", pro.insts[1].Inst, reg, why)
			}
		})
	}
}

// TestEvictNilCheckNotABranchTarget: a nil check's premises (the entry's
// flags, a pointer the caller passed) hold on the straight path from the
// entry only, so an instruction a branch lands on is not evicted behind
// one. mov rcx,rbx; mov rdx,[rax] (+3); je +5; cmp rdx,rcx; jne +3; ret.
func TestEvictNilCheckNotABranchTarget(t *testing.T) {
	code := []byte{0x48, 0x89, 0xd9, 0x48, 0x8b, 0x10, 0x74, 0x05, 0x48, 0x39, 0xca, 0x75, 0xf6, 0xc3}
	fn := Func{Name: "f", Entry: 0x401000, Size: len(code), Bytes: append(slices.Clone(code), bytes.Repeat([]byte{0xCC}, 18)...)}
	pro, err := decodeAll(fn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := pro.fitEvict(SiteMode, fn.Entry, 0, []int{0}); err == nil {
		t.Fatalf("evicts %v behind a nil check of %v although the jne at +11 lands on it", c.evs[0].in.Inst, c.evs[0].nilReg)
	}
}

// TestEvictableRefusesPCRelative: an evicted instruction is copied into a
// stub, so one whose operand is relative to where it stands is refused,
// including the forms x86asm gives no PCRel (a VEX operand encoded
// RIP-relative, an EIP-relative lea).
func TestEvictableRefusesPCRelative(t *testing.T) {
	for _, tc := range []struct {
		name, code string
		why        string
	}{
		{"mov rax,[rip+0x10]", "488b0510000000", "PC-relative"},
		{"vmovsd xmm0,[rip+0x10]", "c5fb1005100000", "PC-relative"},
		{"shlx rax,[rip+0x10],rax", "c4e2f9f70510000000", "PC-relative"},
		{"lea rax,[eip+0x10]", "67488d0510000000", "PC-relative"},
		{"mov rax,[rsp+0x10]", "488b442410", ""},
		{"mov r14,fs:[-8]", "644c8b3425f8ffffff", ""},
	} {
		b, err := hex.DecodeString(tc.code + strings.Repeat("cc", 16))
		if err != nil {
			t.Fatal(err)
		}
		in, err := decode(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := evictable(inst{Inst: in}); got != tc.why {
			t.Errorf("%s: evictable = %q, want %q", tc.name, got, tc.why)
		}
	}
}
