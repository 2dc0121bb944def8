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
	defer func() { decoder = x86asm.Decode }()
	decoder = func([]byte, int) (x86asm.Inst, error) { panic("index out of range [3] with length 3") }

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

	decoder = x86asm.Decode
	p, err := pl.Plan(f, SiteMode)
	if err != nil {
		t.Fatalf("Plan with the real decoder: %v", err)
	}
	decoder = func([]byte, int) (x86asm.Inst, error) { panic("boom") }
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
