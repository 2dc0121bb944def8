package dispatch

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestDecoderPanicRefuses: a decoder that panics (x86asm has, on some
// inputs) makes the function unpatchable instead of crashing the program,
// in the planner, the verifier and the trampoline planner alike.
func TestDecoderPanicRefuses(t *testing.T) {
	useDecoder(t, func([]byte, int) (x86asm.Inst, error) { panic("index out of range [3] with length 3") })

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

	useDecoder(t, x86asm.Decode)
	p, err := pl.Plan(f, SiteMode)
	if err != nil {
		t.Fatalf("Plan with the real decoder: %v", err)
	}
	useDecoder(t, func([]byte, int) (x86asm.Inst, error) { panic("boom") })
	if err := Verify(f, p); err == nil {
		t.Fatal("Verify accepted a patch it could not decode")
	}
}

// lengthCases are real instructions that x86asm misreads or does not know,
// from Go 1.26.8's go and compile binaries, with the bytes that follow them
// there: decode or decodeAll must measure them as objdump does.
var lengthCases = []struct {
	name string
	code string // the instruction, then what followed it
	n    int
}{
	{"vzeroupper; jmp (cmpbody)", "c5f877e960feffff", 3},
	{"vzeroupper; mov [r11],-1 (indexbody)", "c5f87749c703ffffffff", 3},
	{"vzeroupper; add rsp,0x100 (scanSpanPackedAVX512)", "c5f8774881c400010000", 3},
	{"adcx r13,rbx (math/big.addMulVVWW)", "664c0f38f6ebf34d0f38f6", 6},
	{"adcx r8,rbx (bigmod.addMulVVW1024)", "664c0f38f6c3f34c0f38f6", 6},
	{"adox r13,[r9+8] (synthetic)", "f34d0f38f66908c3", 7},
	{"adcx rax,[rsp+rcx*8+0x100] (synthetic)", "66480f38f684cc00010000c3", 11},
	{"adcx eax,[rip+0x10] (synthetic)", "660f38f60510000000c3", 9},
}

// TestNarrowLengths checks the two narrow length rules (vzeroupper,
// ADCX/ADOX) on real bytes, against objdump when it is installed.
func TestNarrowLengths(t *testing.T) {
	for _, tc := range lengthCases {
		b, err := hex.DecodeString(tc.code)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if in, err := decode(b); err == nil && in.Op != 0 {
			n = in.Len
		} else if k, ok := adxLen(b); ok {
			n = k
		}
		if n != tc.n {
			t.Errorf("%s: measured %d bytes, want %d", tc.name, n, tc.n)
		}
		if od := objdumpFirstLen(t, b); od >= 0 && od != tc.n {
			t.Errorf("%s: objdump reads %d bytes, the table says %d", tc.name, od, tc.n)
		}
	}
	// vzeroall and the 3-byte VEX spelling are refused, not measured.
	for _, h := range []string{"c5fc77c3", "c4e17877c3"} {
		b, _ := hex.DecodeString(h)
		if _, err := decode(b); !errors.Is(err, ErrUnpatchable) {
			t.Errorf("% x: %v, want a refusal", b, err)
		}
	}
	// Not ADCX/ADOX: no rule applies.
	for _, h := range []string{"660f38f7c3", "f20f38f6c3", "664c0f38", "0f38f6c3c3"} {
		b, _ := hex.DecodeString(h)
		if n, ok := adxLen(b); ok {
			t.Errorf("% x: adxLen %d", b, n)
		}
	}
}

// objdumpFirstLen is the length objdump gives the first instruction of b,
// or -1 when objdump is not installed.
func objdumpFirstLen(t *testing.T, b []byte) int {
	t.Helper()
	bin, err := exec.LookPath("objdump")
	if err != nil {
		return -1
	}
	file := filepath.Join(t.TempDir(), "code.bin")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-D", "-b", "binary", "-m", "i386:x86-64", "-w", "--insn-width=16", file).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, "\t"); len(f) >= 3 && strings.TrimSpace(f[0]) == "0:" {
			return len(strings.Fields(f[1]))
		}
	}
	t.Fatalf("objdump printed no instruction at 0 for % x:\n%s", b, out)
	return 0
}

// TestDecodeAllAgreesWithObjdump decodes, whole, every function of the
// toolchain's go binary that holds vzeroupper or ADCX/ADOX bytes, and
// requires decodeAll's instruction boundaries to be objdump's, from the
// entry to the end: a decoder that loses step there could miss a branch
// back into a patch. (Before the vzeroupper length fix, x86asm read 4
// bytes for it and lost step in bytealg and crypto assembly.)
func TestDecodeAllAgreesWithObjdump(t *testing.T) {
	if testing.Short() {
		t.Skip("runs objdump over dozens of functions")
	}
	bin, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("no objdump")
	}
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skip("no go command")
	}
	path := filepath.Join(strings.TrimSpace(string(root)), "bin", "go")
	funcs, err := elfFuncs(path)
	if err != nil {
		t.Skip(err)
	}
	odLine := regexp.MustCompile(`^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t(.*)$`)
	checked, opaque := 0, 0
	for _, s := range funcs {
		code := s.code
		if !bytes.Contains(code, []byte(vzeroupper)) && !bytes.Contains(code, []byte{0x0f, 0x38, 0xf6}) {
			continue
		}
		out, err := exec.Command(bin, "-d", "-w", "--insn-width=16", fmt.Sprintf("--start-address=%#x", s.Value), fmt.Sprintf("--stop-address=%#x", s.Value+s.Size), path).Output()
		if err != nil {
			t.Fatalf("objdump %s: %v", s.Name, err)
		}
		var want []int
		bad := false
		for _, l := range strings.Split(string(out), "\n") {
			if m := odLine.FindStringSubmatch(l); m != nil {
				a, _ := strconv.ParseUint(m[1], 16, 64)
				want = append(want, int(a-s.Value))
				bad = bad || strings.Contains(m[3], "(bad)")
			}
		}
		pro, err := decodeAll(Func{Name: s.Name, Entry: uintptr(s.Value), Size: len(code), Bytes: code}, nil)
		if bad {
			// Data in text (crypto/internal/boring/sig's markers): objdump
			// cannot decode it either, and decodeAll must refuse it.
			if err == nil {
				t.Errorf("%s: objdump finds undecodable bytes, decodeAll accepts the function", s.Name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		got := make([]int, len(pro.insts))
		for i, in := range pro.insts {
			got[i] = in.off
			if in.opaque {
				opaque++
			}
		}
		if !slices.Equal(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Errorf("%s: decodeAll's instruction %d starts at +%#x, objdump's at +%#x", s.Name, i, got[i], want[i])
					break
				}
			}
			if len(got) != len(want) {
				t.Errorf("%s: decodeAll finds %d instructions, objdump %d", s.Name, len(got), len(want))
			}
		}
		checked++
	}
	if checked < 10 || opaque == 0 {
		t.Fatalf("checked %d functions with %d ADCX/ADOX; want many, and some", checked, opaque)
	}
	t.Logf("%d functions of %s with vzeroupper or ADCX/ADOX decode as objdump reads them (%d ADCX/ADOX measured by adxLen)", checked, path, opaque)
}

// useDecoder makes d the decoder until the test ends, with nothing known.
func useDecoder(t *testing.T, d func([]byte, int) (x86asm.Inst, error)) {
	t.Helper()
	forget()
	decoder = d
	t.Cleanup(func() {
		decoder = x86asm.Decode
		forget()
	})
}

// isKnown reports whether known holds the instruction at the start of b.
func isKnown(b []byte) bool {
	_, ok := lookupKnown(b)
	return ok
}

// TestDecodeKnown: decodeKnown answers what decode does, remembers an
// instruction the second time it decodes it (a first sighting costs one
// decode, not two), only with more than 15 bytes from its start, and never
// one whose decoding looked at the byte after it. An instruction that
// differs from a known one only in its PC-relative field is known, with
// its own field.
func TestDecodeKnown(t *testing.T) {
	tail := strings.Repeat("cc", 16)
	for _, tc := range []struct {
		name  string
		codes []string // decoded in turn; all but the first are known
		known bool
	}{
		{"mov [rsp+8],rax (spill)", []string{"4889442408", "4889442408"}, true},
		{"cmp rsp,[r14+0x10] (stack check)", []string{"493b6610"}, true},
		{"call rel32", []string{"e8a1b2c3d4", "e8f0ffffff", "e800000000"}, true},
		{"jmp rel32", []string{"e9a1b2c3d4", "e910000000"}, true},
		{"jbe rel8", []string{"7625", "76f0"}, true},
		{"jne rel32", []string{"0f8510010000", "0f85f0feffff"}, true},
		{"lea rax,[rip+disp32]", []string{"488d05a1b2c3d4", "488d0500000080"}, true},
		{"cmp dword [rip+disp32],imm8", []string{"833d1000000001", "833df0ffffff01"}, true},
		{"vzeroupper", []string{"c5f877"}, true},
		{"endbr64", []string{"f30f1efa"}, true},
	} {
		useDecoder(t, x86asm.Decode)
		first, _ := hex.DecodeString(tc.codes[0] + tail)
		if _, err := decodeKnown(first); err != nil || isKnown(first) {
			t.Errorf("%s: known after one decoding (%v)", tc.name, err)
		}
		for i, code := range tc.codes {
			b, err := hex.DecodeString(code + tail)
			if err != nil {
				t.Fatal(err)
			}
			if was := isKnown(b); was != (i > 0) {
				t.Errorf("%s: % x known before its decoding: %v", tc.name, b[:len(code)/2], was)
			}
			want, err := decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := decodeKnown(b); err != nil || got != want {
				t.Errorf("%s: decodeKnown(% x) = %v, %v; decode %v", tc.name, b[:want.Len], got, err, want)
			}
			if isKnown(b) != tc.known {
				t.Errorf("%s: known %v after decoding, want %v", tc.name, !tc.known, tc.known)
			}
		}
	}
	// Instructions alike but for where a PC-relative field would lie: MOV
	// [RBX],3 must not take MOV [RBX],0 with LEA's field shape (seen in
	// runtime.(*timeHistogram).write before the shape was in the key).
	useDecoder(t, x86asm.Decode)
	for _, code := range []string{"48c70300000000", "488d0500000000", "48c70303000000"} {
		b, _ := hex.DecodeString(code + tail)
		want, _ := decode(b)
		if got, err := decodeKnown(b); err != nil || got != want {
			t.Errorf("% x: decodeKnown = %v, %v; decode %v", b[:7], got, err, want)
		}
	}

	// Fifteen bytes from its start: the decoder may see fewer than it
	// would elsewhere, so nothing is remembered.
	useDecoder(t, x86asm.Decode)
	b, _ := hex.DecodeString("4889442408" + strings.Repeat("cc", 10))
	if _, err := decodeKnown(b); err != nil || isKnown(b) {
		t.Errorf("% x: %v, known %v with 15 bytes", b, err, isKnown(b))
	}
	// An instruction found stable near the end is remembered: the spills
	// of a stack-growth tail appear nowhere else in a function.
	useDecoder(t, x86asm.Decode)
	spill, _ := hex.DecodeString("4889442408")
	in, _ := decode(spill)
	if !stable(spill, in) || !isKnown(append(spill, 0xCC)) {
		t.Errorf("% x: stable, then known %v", spill, isKnown(append(spill, 0xCC)))
	}

	// Near the end, a known instruction is taken with a byte after it,
	// and decoded without one: a decoder that peeks there would fail.
	var decodes int
	useDecoder(t, func(b []byte, mode int) (x86asm.Inst, error) { decodes++; return x86asm.Decode(b, mode) })
	b, _ = hex.DecodeString("4889442408" + tail)
	decodeKnown(b)
	decodeKnown(b)
	for _, tc := range []struct {
		code    string
		decodes int
	}{{"4889442408c3", 0}, {"4889442408", 1}} {
		b, _ := hex.DecodeString(tc.code)
		decodes = 0
		if got, err := decodeKnown(b); err != nil || got.Len != 5 || decodes != tc.decodes {
			t.Errorf("% x: decodeKnown = %v, %v after %d decodes, want %d", b, got, err, decodes, tc.decodes)
		}
	}

	// A decoder whose answer for 0F 77 depends on the byte after it (a
	// register or memory operand): neither answer may stand for the other.
	peek := func(b []byte, mode int) (x86asm.Inst, error) {
		if len(b) > 2 && b[0] == 0x0F && b[1] == 0x77 {
			if b[2]>>6 == 3 {
				return x86asm.Inst{Op: x86asm.EMMS, Len: 2, Mode: 64}, nil
			}
			return x86asm.Inst{Op: x86asm.NOP, Len: 2, Mode: 64}, nil
		}
		return x86asm.Decode(b, mode)
	}
	useDecoder(t, peek)
	reg := append([]byte{0x0F, 0x77, 0xC3}, make([]byte, 16)...)
	mem := append([]byte{0x0F, 0x77, 0x03}, make([]byte, 16)...)
	for _, b := range [][]byte{reg, mem, reg, mem} {
		want, _ := peek(b, 64)
		if got, err := decodeKnown(b); err != nil || got != want {
			t.Errorf("% x: decodeKnown = %v, %v; want %v", b[:3], got, err, want)
		}
	}
	if isKnown(reg) || isKnown(mem) {
		t.Error("remembered an instruction that depends on the byte after it")
	}
}

// TestDecodeKnownAgreesOverBinaries decodes every function of the test
// binary, and every seventh of the toolchain's compile, linearly twice:
// with decode alone and through known, which must agree on every
// instruction (the oracle is x86asm itself, without the memory); near a
// function's end, stable must agree with its decodes before fills.
func TestDecodeKnownAgreesOverBinaries(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{self}
	if testing.Short() {
		paths = paths[:1]
	} else if tools, err := exec.Command("go", "env", "GOTOOLDIR").Output(); err == nil {
		paths = append(paths, filepath.Join(strings.TrimSpace(string(tools)), "compile"))
	}
	useDecoder(t, x86asm.Decode)
	for k, path := range paths {
		funcs, err := elfFuncs(path)
		if err != nil {
			t.Fatal(err)
		}
		every := 1 + 6*k
		insts, hits, tails := 0, 0, 0
		for i, s := range funcs {
			if i%every != 0 {
				continue
			}
			code := s.code
			for off := 0; off < len(code); {
				want, err := decode(code[off:])
				if err != nil || want.Len == 0 {
					if got, err := decodeKnown(code[off:]); err == nil && got.Len > 0 && off+maxInstLen >= len(code) {
						t.Fatalf("%s %s+%#x: decodeKnown = %v where decode fails", filepath.Base(path), s.Name, off, got)
					}
					break
				}
				if off+maxInstLen >= len(code) {
					// The tail: decodeKnown and stable may answer from known.
					b := code[off : off+want.Len]
					if got, fills := stable(b, want), stableFills(b, want); got != fills {
						t.Fatalf("%s %s+%#x: stable %v, by fills %v", filepath.Base(path), s.Name, off, got, fills)
					}
					if got, err := decodeKnown(code[off:]); err != nil || got != want {
						t.Fatalf("%s %s+%#x: decodeKnown = %v, %v near the end; decode %v", filepath.Base(path), s.Name, off, got, err, want)
					}
					tails++
					off += want.Len
					continue
				}
				wasKnown := isKnown(code[off:])
				got, err := decodeKnown(code[off:])
				if err != nil || got != want {
					t.Fatalf("%s %s+%#x: decodeKnown = %v, %v; decode %v", filepath.Base(path), s.Name, off, got, err, want)
				}
				insts++
				if wasKnown {
					hits++
				}
				off += want.Len
			}
		}
		t.Logf("%s: %d instructions, %.0f%% known when met, %d remembered; %d near an end", filepath.Base(path), insts, 100*float64(hits)/float64(max(insts, 1)), len(known.inst), tails)
		if insts == 0 || hits == 0 {
			t.Errorf("%s: %d instructions, %d known", path, insts, hits)
		}
	}
}

// TestDecodeKnownAgreesOnMutations feeds decodeKnown real instructions of
// the test binary with bytes changed at random (inside the instruction,
// and the bytes after it), and short tails of them, and requires x86asm's
// answer every time: a remembered instruction must never stand for bytes
// x86asm reads otherwise.
func TestDecodeKnownAgreesOnMutations(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	funcs, err := elfFuncs(self)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte // the functions' code, end to end
	for _, s := range funcs {
		data = append(data, s.code...)
	}
	useDecoder(t, x86asm.Decode)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	var buf [2 * maxInstLen]byte
	for i := range n {
		if i%20_000 == 0 {
			forget() // remember other instructions
		}
		at := rng.IntN(len(data) - len(buf))
		copy(buf[:], data[at:])
		// Change up to three bytes among the first 16.
		for range rng.IntN(4) {
			buf[rng.IntN(16)] = byte(rng.Uint32())
		}
		b := buf[:]
		if i%4 == 0 {
			b = buf[:1+rng.IntN(maxInstLen)] // a tail: the code ends here
		}
		want, werr := decode(b)
		got, gerr := decodeKnown(b)
		if (werr == nil) != (gerr == nil) || werr == nil && got != want {
			t.Fatalf("% x: decodeKnown = %v, %v; decode %v, %v", b, got, gerr, want, werr)
		}
	}
	t.Logf("%d remembered", len(known.inst))
}

// elfFunc is a function symbol of an ELF file and its code.
type elfFunc struct {
	elf.Symbol
	code []byte
}

// elfFuncs returns the functions of the ELF file at path that lie in its
// .text, with their code.
func elfFuncs(path string) ([]elfFunc, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	text := f.Section(".text")
	if text == nil {
		return nil, fmt.Errorf("%s: no .text", path)
	}
	data, err := text.Data()
	if err != nil {
		return nil, err
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	var out []elfFunc
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 && s.Value >= text.Addr && s.Value+s.Size <= text.Addr+text.Size {
			out = append(out, elfFunc{s, data[s.Value-text.Addr : s.Value-text.Addr+s.Size]})
		}
	}
	return out, nil
}

// TestDecodeAllRemembersFifteenFromTheEnd: an instruction decoded from
// exactly 15 bytes (the reload of a stack-growth tail in most functions)
// is too close to the end for decodeKnown to remember and too far for
// stable to be asked; decodeAll asks stable anyway, so that the next
// function finds it known.
func TestDecodeAllRemembersFifteenFromTheEnd(t *testing.T) {
	// call rel32; mov rbx,[rsp+0x10]; mov rcx,[rsp+0x18]; jmp rel32
	code, _ := hex.DecodeString("e800000000488b5c2410488b4c2418e9e6ffffff")
	var decodes []string
	useDecoder(t, func(b []byte, mode int) (x86asm.Inst, error) {
		in, err := x86asm.Decode(b, mode)
		decodes = append(decodes, hex.EncodeToString(b[:min(len(b), in.Len)]))
		return in, err
	})
	f := Func{Name: "tail", Entry: 0x401000, Size: len(code), Bytes: code}
	for range 2 {
		decodes = nil
		if _, err := decodeAll(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range decodes {
		if d == "488b5c2410" {
			t.Fatalf("decoded again in the second function: %q", decodes)
		}
	}
}
