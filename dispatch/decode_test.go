package dispatch

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
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
	f, err := elf.Open(path)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	text := f.Section(".text")
	data, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	odLine := regexp.MustCompile(`^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t(.*)$`)
	checked, opaque := 0, 0
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || s.Value < text.Addr || s.Value+s.Size > text.Addr+text.Size {
			continue
		}
		code := data[s.Value-text.Addr : s.Value-text.Addr+s.Size]
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

// TestDecodeKnown: decodeKnown answers what decode does, remembers an
// instruction only with more than 15 bytes from its start, and never
// one whose decoding looked at the byte after it.
func TestDecodeKnown(t *testing.T) {
	tail := strings.Repeat("cc", 16)
	for _, tc := range []struct {
		name, code string
		remember   bool
	}{
		{"mov [rsp+8],rax (spill)", "4889442408" + tail, true},
		{"cmp rsp,[r14+0x10] (stack check)", "493b6610" + tail, true},
		{"call rel32", "e8a1b2c3d4" + tail, true},
		{"vzeroupper", "c5f877" + tail, true},
		{"endbr64", "f30f1efa" + tail, true},
		{"mov [rsp+8],rax, 15 bytes left", "4889442408" + strings.Repeat("cc", 10), false},
	} {
		useDecoder(t, x86asm.Decode)
		b, err := hex.DecodeString(tc.code)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			got, err := decodeKnown(b)
			if err != nil || got != want {
				t.Errorf("%s: decodeKnown #%d = %v, %v; decode %v", tc.name, i+1, got, err, want)
			}
		}
		_, remembered := known.inst[string(b[:want.Len])]
		if remembered != tc.remember {
			t.Errorf("%s: remembered %v, want %v", tc.name, remembered, tc.remember)
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
	if len(known.inst) != 0 {
		t.Errorf("remembered an instruction that depends on the byte after it: %v", known.inst)
	}
}

// TestDecodeKnownAgreesOverBinaries decodes every function of the test
// binary, and every seventh of the toolchain's compile, linearly twice:
// with decode alone and through known, which must agree on every
// instruction (the oracle is x86asm itself, without the memory).
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
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		text := f.Section(".text")
		data, err := text.Data()
		if err != nil {
			t.Fatal(err)
		}
		syms, err := f.Symbols()
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		every := 1 + 6*k
		insts, hits := 0, 0
		for i, s := range syms {
			if i%every != 0 || elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || s.Value < text.Addr || s.Value+s.Size > text.Addr+text.Size {
				continue
			}
			code := data[s.Value-text.Addr : s.Value-text.Addr+s.Size]
			for off := 0; off+maxInstLen < len(code); {
				want, err := decode(code[off:])
				if err != nil || want.Len == 0 {
					break
				}
				_, wasKnown := known.inst[string(code[off:off+want.Len])]
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
		t.Logf("%s: %d instructions, %.0f%% known when met, %d remembered", filepath.Base(path), insts, 100*float64(hits)/float64(max(insts, 1)), len(known.inst))
	}
}
