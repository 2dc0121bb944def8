//go:build linux && amd64

package main

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard/dispatch"
)

// The scan tests check the planner's choices with their own decoder, never
// with dispatch.Verify: a check that shares the planner's reasoning would
// share its mistakes.

// compilePath returns the Go toolchain's compile binary.
func compilePath(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	out, err := exec.Command("go", "env", "GOTOOLDIR").Output()
	if err != nil {
		t.Fatalf("go env GOTOOLDIR: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "compile")
}

// raceEnabled reports whether this test binary was built with -race, which
// makes the scan several times slower.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestScanCompile(t *testing.T) {
	path := compilePath(t)
	start, cpu0 := time.Now(), cpuTime(t)
	rep, err := scanBinary(path, logWriter{t})
	took, cpu := time.Since(start), cpuTime(t)-cpu0
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scanned %d functions of %s in %v (%v of CPU)", len(rep.results), path, took, cpu)
	tactics, reasons, patched := rep.totals()
	t.Logf("tactics %v, refusals %v, %d relay pages", tactics, reasons, rep.relayPages())

	// 99.94% on Go 1.26.8's compile (issue 8's target is 99.9%; 99.71%
	// before nil-checked loads, chains, link prefixes and the decoding
	// fixes, 98.80% before eviction).
	if cov := rep.coverage(); cov < 0.999 {
		t.Errorf("coverage %.2f%% (%d of %d), want at least 99.9%%", 100*cov, patched, len(rep.results))
	} else {
		t.Logf("coverage %.2f%% (%d of %d)", 100*cov, patched, len(rep.results))
	}
	if cov := rep.originalCoverage(); cov < 0.995 {
		t.Errorf("Original works for %.2f%% of the patchable functions, want at least 99.5%%", 100*cov)
	} else {
		t.Logf("Original works for %.2f%% of the patchable functions", 100*cov)
	}
	// The time is logged above, not asserted: a unit test on a shared
	// machine cannot time anything (CI prints the line).
	checkResults(t, rep)
}

// cpuTime is the CPU time this process has used so far, user and system.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestScanSelf scans the running test binary the way "switchboard scan"
// with no argument does: live addresses, live mappings.
func TestScanSelf(t *testing.T) {
	rep, err := scanSelf(logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.results) < 1000 {
		t.Fatalf("only %d functions in the test binary", len(rep.results))
	}
	t.Logf("%d functions, coverage %.2f%%, in %v", len(rep.results), 100*rep.coverage(), rep.elapsed)
	checkResults(t, rep)
}

// checkResults checks every chosen patch and that no two sites overlap or
// sit inside the binary.
func checkResults(t *testing.T, rep *scanReport) {
	t.Helper()
	bad := 0
	for _, r := range rep.results {
		if (r.patch == nil) == (r.refusal == nil) {
			t.Errorf("%s: want exactly one of patch and refusal, got %v and %v", r.fn.Name, r.patch, r.refusal)
			continue
		}
		if r.patch == nil {
			continue
		}
		if err := checkPatch(r.fn, r.patch); err != nil {
			if bad++; bad <= 20 {
				t.Errorf("dispatch bug: %s %#x (%v), first bytes % x: %v",
					r.fn.Name, r.fn.Entry, r.patch.Tactic, r.fn.Bytes[:min(16, len(r.fn.Bytes))], err)
			}
		}
	}
	if bad > 20 {
		t.Errorf("... and %d more bad patches", bad-20)
	}
	checkSites(t, rep)
}

// checkPatch re-decodes one patch independently of the planner.
func checkPatch(f dispatch.Func, p *dispatch.Patch) error {
	start, end := p.Offset, p.Offset+len(p.Bytes)
	if start < 0 || end > len(f.Bytes) {
		return fmt.Errorf("patch [+%d,+%d) leaves the room of %d bytes", start, end, len(f.Bytes))
	}
	if a, b := f.Entry+uintptr(start), f.Entry+uintptr(end-1); a&^7 != b&^7 {
		return fmt.Errorf("patch [%#x,%#x] crosses an aligned quadword", a, b)
	}
	if err := checkJump(f, p); err != nil {
		return err
	}
	if err := checkTactic(f, p); err != nil {
		return err
	}
	return checkBoundaries(f, p)
}

// checkJump requires the patch to be one JMP rel32 to the site, after only
// prefixes the CPU ignores (never 0x66, which AMD honours).
func checkJump(f dispatch.Func, p *dispatch.Patch) error {
	in, err := x86asm.Decode(p.Bytes, 64)
	if err != nil || in.Op != x86asm.JMP || in.Len != len(p.Bytes) {
		return fmt.Errorf("patch % x decodes as %v (%v), not one JMP", p.Bytes, in, err)
	}
	n := len(p.Bytes) - 5
	if n < 0 || p.Bytes[n] != 0xE9 {
		return fmt.Errorf("patch % x is not E9 rel32 after prefixes", p.Bytes)
	}
	for i, b := range p.Bytes[:n] {
		seg := b == 0x26 || b == 0x36 || b == 0x3E
		rex := b&0xF0 == 0x40 && i == n-1
		if !seg && !rex {
			return fmt.Errorf("patch % x: prefix %#02x at %d", p.Bytes, b, i)
		}
	}
	rel := int32(binary.LittleEndian.Uint32(p.Bytes[n+1:]))
	if to := f.Entry + uintptr(p.Offset+len(p.Bytes)) + uintptr(int64(rel)); to != p.Site {
		return fmt.Errorf("patch % x jumps to %#x, site is %#x", p.Bytes, to, p.Site)
	}
	return nil
}

// checkTactic checks what each tactic promises about the bytes it skips.
// A tactic this test does not know gets the generic checks only.
func checkTactic(f dispatch.Func, p *dispatch.Patch) error {
	switch p.Tactic {
	case dispatch.EntryJump, dispatch.PunnedJump:
		if p.Offset != 0 || len(p.Bytes) != 5 {
			return fmt.Errorf("%v: %d bytes at +%d, want 5 at +0", p.Tactic, len(p.Bytes), p.Offset)
		}
	case dispatch.PrefixedJump:
		if p.Offset != 0 || len(p.Bytes) == 5 {
			return fmt.Errorf("%v: %d bytes at +%d, want prefixes at +0", p.Tactic, len(p.Bytes), p.Offset)
		}
	case dispatch.PastNop:
		// A run of 1-3 one-byte nops, each an instruction of its own.
		if p.Offset < 1 || p.Offset > 3 || p.Offset >= f.Size || !bytes.Equal(f.Bytes[:p.Offset], bytes.Repeat([]byte{0x90}, p.Offset)) {
			return fmt.Errorf("%v at +%d skips % x", p.Tactic, p.Offset, f.Bytes[:min(p.Offset, len(f.Bytes))])
		}
	case dispatch.PastPushRBP:
		if p.Offset != 1 || f.Bytes[0] != 0x55 {
			return fmt.Errorf("%v at +%d skips %#02x", p.Tactic, p.Offset, f.Bytes[0])
		}
		// The site must undo the push before the dispatcher runs.
		if p.Tactic == dispatch.PastPushRBP && (len(p.SiteCode) == 0 || p.SiteCode[0] != 0x5D) {
			return fmt.Errorf("past-push-rbp site % x does not pop rbp first", p.SiteCode)
		}
	}
	return nil
}

// checkBoundaries decodes the original code and the patched image: the patch
// point must be an instruction boundary, and at every boundary strictly
// inside the patch and inside the code, the patched image must decode as
// the original instruction, so a thread resumed there runs what it would
// have run anyway.
func checkBoundaries(f dispatch.Func, p *dispatch.Patch) error {
	code := f.Bytes[:f.Size]
	img := slices.Clone(f.Bytes)
	copy(img[p.Offset:], p.Bytes)
	end := p.Offset + len(p.Bytes)
	// An eviction chain: each jump starts inside the one before (the
	// patch first), agrees with every byte written before it, and all
	// stay in the patch's aligned quadword or octoword.
	evicted := map[int]bool{}
	if p.Evict != nil && p.Tactic != dispatch.EvictJump {
		return fmt.Errorf("%v patch carries an eviction", p.Tactic)
	}
	if p.Evict == nil && p.Tactic == dispatch.EvictJump {
		return fmt.Errorf("evict-jump patch without an eviction")
	}
	prev := end - 5
	for ev := p.Evict; ev != nil; ev = ev.Next {
		for i, b := range ev.Jump {
			if at := ev.Offset + i; at < end && img[at] != b {
				return fmt.Errorf("eviction jump % x at +%d disagrees with the bytes written before it", ev.Jump, ev.Offset)
			}
		}
		lo, hi := f.Entry+uintptr(p.Offset), f.Entry+uintptr(ev.Offset+len(ev.Jump)-1)
		inQuad := lo&^7 == hi&^7
		inOcta := lo&^15 == hi&^15 && lo&^15 >= f.Entry && lo&^15+16 <= f.Entry+uintptr(len(f.Bytes))
		if ev.Offset <= prev || ev.Offset >= prev+5 || !inQuad && !inOcta || ev.Offset+len(ev.Jump) > len(f.Bytes) {
			return fmt.Errorf("eviction jump [+%d,+%d) is not inside the jump at +%d and the patch's aligned quadword or octoword", ev.Offset, ev.Offset+len(ev.Jump), prev)
		}
		copy(img[ev.Offset:], ev.Jump)
		end = max(end, ev.Offset+len(ev.Jump))
		evicted[ev.Offset] = true
		if err := checkEvictStub(f, p, ev); err != nil {
			return err
		}
		prev = ev.Offset + len(ev.Jump) - 5
	}
	onBoundary := false
	for off := 0; off < len(code) && off < end; {
		orig, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return fmt.Errorf("original code at +%d (% x): %v", off, code[off:min(off+8, len(code))], err)
		}
		if off == p.Offset {
			onBoundary = true
		}
		if evicted[off] {
			delete(evicted, off)
		} else if off > p.Offset {
			got, err := x86asm.Decode(img[off:], 64)
			if err != nil || got.Len != orig.Len || !bytes.Equal(img[off:off+got.Len], code[off:off+orig.Len]) || got.String() != orig.String() {
				return fmt.Errorf("boundary +%d: patched % x decodes as %v (%v), original % x is %v",
					off, img[off:min(off+orig.Len, len(img))], got, err, code[off:off+orig.Len], orig)
			}
		}
		off += orig.Len
	}
	if !onBoundary {
		return fmt.Errorf("patch point +%d is not an instruction boundary", p.Offset)
	}
	if len(evicted) > 0 {
		return fmt.Errorf("evictions %v are not instruction boundaries", evicted)
	}
	return nil
}

// checkEvictStub follows a thread resumed at the evicted boundary: the
// second jump leads to the stub, whose first instruction is the original
// one, byte for byte, and whose second (unless the first returns) is a jmp
// to the original's next boundary.
func checkEvictStub(f dispatch.Func, p *dispatch.Patch, ev *dispatch.Eviction) error {
	abs := func(in x86asm.Inst, pc uintptr) uintptr {
		r, _ := in.Args[0].(x86asm.Rel)
		return pc + uintptr(in.Len) + uintptr(int64(r))
	}
	// jmp rel32 after 0-2 ds prefixes, which the CPU ignores.
	j, err := x86asm.Decode(ev.Jump, 64)
	np := len(ev.Jump) - 5
	if err != nil || j.Op != x86asm.JMP || j.Len != len(ev.Jump) || np < 0 || np > 2 || !bytes.Equal(ev.Jump[:np+1], append(bytes.Repeat([]byte{0x3e}, np), 0xe9)) || abs(j, f.Entry+uintptr(ev.Offset)) != ev.Addr {
		return fmt.Errorf("eviction jump % x is not jmp %#x", ev.Jump, ev.Addr)
	}
	orig, err := x86asm.Decode(f.Bytes[ev.Offset:f.Size], 64)
	if err != nil {
		return fmt.Errorf("evicted instruction at +%d: %v", ev.Offset, err)
	}
	skip, err := checkStubNilCheck(f, p, ev, orig)
	if err != nil {
		return err
	}
	code, addr := ev.Code[skip:], ev.Addr+uintptr(skip)
	n := orig.Len
	if _, rel := orig.Args[0].(x86asm.Rel); rel {
		// A direct jmp or jcc: the same condition, the same target.
		got, err := x86asm.Decode(code, 64)
		if err != nil || got.Op != orig.Op || abs(got, addr) != abs(orig, f.Entry+uintptr(ev.Offset)) {
			return fmt.Errorf("stub % x: %v, not the evicted %v to %#x", ev.Code, got, orig, abs(orig, f.Entry+uintptr(ev.Offset)))
		}
		n = got.Len
	} else if len(code) < n || !bytes.Equal(code[:n], f.Bytes[ev.Offset:ev.Offset+n]) {
		return fmt.Errorf("stub % x does not start with the evicted % x", ev.Code, f.Bytes[ev.Offset:ev.Offset+n])
	}
	if orig.Op == x86asm.RET || orig.Op == x86asm.JMP {
		if len(code) != n {
			return fmt.Errorf("stub % x has bytes after its %v", ev.Code, orig.Op)
		}
		return nil
	}
	back, err := x86asm.Decode(code[n:], 64)
	if err != nil || back.Op != x86asm.JMP || n+back.Len != len(code) ||
		abs(back, addr+uintptr(n)) != f.Entry+uintptr(ev.Offset+orig.Len) {
		return fmt.Errorf("stub % x does not end with a jmp to +%d", ev.Code, ev.Offset+orig.Len)
	}
	return nil
}

// checkStubNilCheck re-derives, from the code alone, what makes an evicted
// memory access safe to run from a stub, and returns the length of the
// stub's nil check. An evicted instruction that reads or writes memory
// must be [reg+disp] with reg a 64-bit general register other than RSP
// and RBP, no index or segment, 0 <= disp < 4096 (with reg nil the
// original faults in the zero page and Go panics); reg must hold the
// caller's value or a whole 64-bit load from memory (never nil plus an
// offset); the first instruction must leave the flags alone (the check's
// test clobbers them); and the stub must start with test reg,reg; je to
// the nil-fault stub. Anything else accessing memory is rejected.
func checkStubNilCheck(f dispatch.Func, p *dispatch.Patch, ev *dispatch.Eviction, orig x86asm.Inst) (int, error) {
	var mem []x86asm.Mem
	for _, a := range orig.Args {
		if m, ok := a.(x86asm.Mem); ok {
			mem = append(mem, m)
		}
	}
	// lea computes an address, nop and the prefetches never fault.
	if len(mem) == 0 || orig.Op == x86asm.LEA || orig.Op == x86asm.NOP || strings.HasPrefix(orig.Op.String(), "PREFETCH") {
		if ev.NilCheck != 0 || strings.HasPrefix(orig.Op.String(), "MOVS") || strings.HasPrefix(orig.Op.String(), "STOS") {
			return 0, fmt.Errorf("stub of %v: nil check %v, or implicit memory operands", orig, ev.NilCheck)
		}
		return 0, nil
	}
	m := mem[0]
	r := m.Base
	if len(mem) != 1 || m.Segment != 0 || m.Index != 0 || r < x86asm.RAX || r > x86asm.R15 || r == x86asm.RSP || r == x86asm.RBP || m.Disp < 0 || m.Disp >= 4096 {
		return 0, fmt.Errorf("evicted %v accesses memory a nil check of one register does not cover", orig)
	}
	// Every instruction from the entry up to the evicted one.
	for off := 0; off < ev.Offset; {
		first, err := x86asm.Decode(f.Bytes[off:f.Size], 64)
		if err != nil {
			return 0, err
		}
		off += first.Len
		if first.Op != x86asm.MOV && first.Op != x86asm.MOVZX && first.Op != x86asm.MOVSX && first.Op != x86asm.MOVSXD && first.Op != x86asm.LEA && first.Op != x86asm.NOP {
			return 0, fmt.Errorf("evicted %v after %v, which may set flags or move SP", orig, first)
		}
		if reg, ok := first.Args[0].(x86asm.Reg); ok && (reg == x86asm.RSP || reg == x86asm.ESP) {
			return 0, fmt.Errorf("evicted %v after %v, which moves SP", orig, first)
		}
		for i, a := range first.Args {
			reg, ok := a.(x86asm.Reg)
			if !ok || dispatch.Family(reg) != r {
				continue
			}
			if _, load := first.Args[1].(x86asm.Mem); i != 0 || reg != r || first.Op != x86asm.MOV || !load {
				return 0, fmt.Errorf("evicted %v dereferences %v, which %v computes", orig, r, first)
			}
		}
	}
	test, err := x86asm.Decode(ev.Code, 64)
	if err != nil || test.Op != x86asm.TEST || test.Args[0] != r || test.Args[1] != r || ev.NilCheck != r {
		return 0, fmt.Errorf("stub % x of %v does not start with test %v,%v", ev.Code, orig, r, r)
	}
	je, err := x86asm.Decode(ev.Code[test.Len:], 64)
	rel, ok := je.Args[0].(x86asm.Rel)
	if err != nil || je.Op != x86asm.JE || !ok || ev.Fault == 0 ||
		ev.Addr+uintptr(test.Len+je.Len)+uintptr(int64(rel)) != ev.Fault {
		return 0, fmt.Errorf("stub % x of %v: no je to the nil-fault stub after its test", ev.Code, orig)
	}
	return test.Len + je.Len, nil
}

// checkSites requires the relay sites to be disjoint, above the lowest
// mappable address and outside the binary's image.
func checkSites(t *testing.T, rep *scanReport) {
	t.Helper()
	type span struct {
		lo, hi uintptr
		name   string
	}
	var sites []span
	for _, r := range rep.results {
		if p := r.patch; p != nil {
			sites = append(sites, span{p.Site, p.Site + uintptr(len(p.SiteCode)), r.fn.Name})
			if ev := p.Evict; ev != nil {
				sites = append(sites, span{ev.Addr, ev.Addr + uintptr(len(ev.Code)), r.fn.Name + " (eviction stub)"})
			}
		}
	}
	slices.SortFunc(sites, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	lo, hi := rep.results[0].fn.Entry, rep.results[len(rep.results)-1].fn.Entry
	for i, s := range sites {
		if s.lo < 0x10000 || lo <= s.lo && s.lo <= hi {
			t.Errorf("%s: site %#x is below 0x10000 or inside the text", s.name, s.lo)
		}
		if i > 0 && sites[i-1].hi > s.lo {
			t.Errorf("sites of %s and %s overlap at %#x", sites[i-1].name, s.name, s.lo)
		}
	}
}

// TestScanRow checks the JSON line of a patch or refusal, planned for tiny
// hand-made functions.
func TestScanRow(t *testing.T) {
	pad := func(code ...byte) []byte {
		b := append([]byte{}, code...)
		for len(b) < 32 {
			b = append(b, 0xCC)
		}
		return b
	}
	tests := []struct {
		name string
		code []byte // from the entry: code then padding
		size int
		// wantHead is patch_hex before the E9: the bytes kept before the
		// patch point.
		wantHead string
		tactic   string
		refused  string
		evict    int // the evicted instruction's offset, for evict-jump
	}{
		// mov rax,[rsp+8]; ret: a 5-byte first instruction, nothing pinned.
		{name: "entry-jump", code: pad(0x48, 0x8b, 0x44, 0x24, 0x08, 0xc3), size: 6, tactic: "entry-jump"},
		// nop; mov eax,0x100; ret. A jmp at +0 keeps b8 00 01 00 as its
		// rel32, which lands inside the binary, and a prefix would have to
		// turn b8 into E9: so the patch moves past the nop.
		{name: "past-nop", code: pad(0x90, 0xb8, 0x00, 0x01, 0x00, 0x00, 0xc3), size: 7, wantHead: "90", tactic: "past-nop"},
		{name: "past-push-rbp", code: pad(0x55, 0xb8, 0x00, 0x01, 0x00, 0x00, 0xc3), size: 7, wantHead: "55", tactic: "past-push-rbp"},
		// cmp rbx,rax; setg al; ret: every window of the entry jump is
		// negative, so setg at +3 is evicted to a stub (setg; jmp back).
		{name: "evict-jump", code: pad(0x48, 0x39, 0xc3, 0x0f, 0x9f, 0xc0, 0xc3), size: 7, tactic: "evict-jump", evict: 3},
		// ret, and the next symbol right after it.
		{name: "too-short", code: []byte{0xc3}, size: 1, refused: "too-short"},
	}
	const entry = 0x401000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			space := &dispatch.Simulated{Taken: []dispatch.Range{{Start: 0x400000, End: 0x500000}}}
			pl := dispatch.NewPlanner(space, entry, entry)
			r, err := scanFunc(pl, dispatch.Func{Name: "main.f", Entry: entry, Size: tt.size, Bytes: tt.code})
			if err != nil {
				t.Fatal(err)
			}
			got := jsonRow(t, r)
			want := map[string]any{"name": "main.f", "entry": "0x401000", "size": float64(tt.size), "room": float64(len(tt.code))}
			want["original"] = ""
			want["registry"] = "" // no policy verdict: registry accepts
			if tt.refused != "" {
				// Original refuses what Set refuses, with the reason.
				if o, _ := got["original"].(string); !strings.HasPrefix(o, tt.refused+":") {
					t.Errorf("original %q, want the refusal %q", o, tt.refused)
				}
				want["original"] = got["original"]
				want["refused"] = tt.refused
				want["detail"] = got["detail"]
				if d, _ := got["detail"].(string); d == "" {
					t.Errorf("refusal without detail")
				}
			} else {
				for _, k := range []string{"patch_hex", "pins", "site", "site_hex"} {
					want[k] = got[k]
				}
				if tt.evict != 0 {
					ev, _ := got["evict"].(map[string]any)
					if ev["offset"] != float64(tt.evict) || !strings.HasPrefix(fmt.Sprint(ev["jump_hex"]), "e9") || !strings.HasPrefix(fmt.Sprint(ev["stub_hex"]), "0f9fc0e9") {
						t.Errorf("evict %v, want the setg at +%d evicted to setg; jmp", got["evict"], tt.evict)
					}
					want["evict"] = got["evict"]
				}
				want["tactic"] = tt.tactic
				want["offset"] = float64(len(tt.wantHead) / 2)
				checkPatchHex(t, got, tt.wantHead, tt.code)
			}
			if !equalRows(got, want) {
				t.Errorf("row\n got %v\nwant %v", got, want)
			}
		})
	}
}

// jsonRow encodes a result's row as the command does and decodes it back.
func jsonRow(t *testing.T, r scanResult) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := (&scanReport{results: []scanResult{r}}).writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 1 {
		t.Fatalf("%d lines, want one: %s", n, buf.Bytes())
	}
	var row map[string]any
	if err := json.Unmarshal(buf.Bytes(), &row); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	return row
}

// checkPatchHex requires patch_hex to be the kept head, then E9 rel32 from
// the end of the patch to the row's site, and the original bytes nowhere
// else changed.
func checkPatchHex(t *testing.T, row map[string]any, head string, code []byte) {
	t.Helper()
	ph, _ := row["patch_hex"].(string)
	b, err := hex.DecodeString(ph)
	if err != nil || !strings.HasPrefix(ph, head) || len(b) != len(head)/2+5 || b[len(head)/2] != 0xE9 {
		t.Fatalf("patch_hex %q: want %q then e9 rel32", ph, head)
	}
	var site uint64
	if _, err := fmt.Sscanf(row["site"].(string), "0x%x", &site); err != nil {
		t.Fatalf("site %q: %v", row["site"], err)
	}
	rel := int32(binary.LittleEndian.Uint32(b[len(b)-4:]))
	if to := uint64(0x401000+len(b)) + uint64(int64(rel)); to != site {
		t.Errorf("patch_hex %s jumps to %#x, site is %#x", ph, to, site)
	}
	if !bytes.Equal(b[:len(head)/2], code[:len(head)/2]) {
		t.Errorf("patch_hex %s changes the bytes before the patch point % x", ph, code[:len(head)/2])
	}
}

func equalRows(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || fmt.Sprint(w) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// TestScanCheckRejects makes sure the independent check catches the
// mistakes it exists for, on a 4-byte leaf "inc rax; ret" at 0x401000.
func TestScanCheckRejects(t *testing.T) {
	f := dispatch.Func{Name: "main.leaf", Entry: 0x401000, Size: 4,
		Bytes: []byte{0x48, 0xff, 0xc0, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc}}
	// jmpTo is where a patch at +off jumps. The safe patch below keeps the
	// ret at +3 as its rel32's third byte.
	jmpTo := func(b []byte, off int) uintptr {
		rel := int32(binary.LittleEndian.Uint32(b[len(b)-4:]))
		return f.Entry + uintptr(off+len(b)) + uintptr(int64(rel))
	}
	good := []byte{0xe9, 0xff, 0xc0, 0xc3, 0xcc}
	tests := []struct {
		name  string
		entry uintptr
		p     dispatch.Patch
	}{
		{"breaks-ret", f.Entry, dispatch.Patch{Tactic: dispatch.PunnedJump, Bytes: []byte{0xe9, 0, 0, 0, 0}, Site: f.Entry + 5}},
		{"wrong-site", f.Entry, dispatch.Patch{Tactic: dispatch.PunnedJump, Bytes: good, Site: 0x1234}},
		{"prefix-66", f.Entry, dispatch.Patch{Tactic: dispatch.PrefixedJump, Bytes: []byte{0x66, 0xe9, 0xff, 0xc0, 0xc3, 0xcc}}},
		{"crosses-quadword", f.Entry + 4, dispatch.Patch{Tactic: dispatch.PunnedJump, Bytes: good}},
		{"past-room", f.Entry, dispatch.Patch{Tactic: dispatch.PastNop, Offset: 8, Bytes: good}},
		{"nop-not-there", f.Entry, dispatch.Patch{Tactic: dispatch.PastNop, Offset: 1, Bytes: good}},
	}
	g := dispatch.Patch{Tactic: dispatch.PunnedJump, Bytes: good}
	g.Site = jmpTo(g.Bytes, 0)
	if err := checkPatch(f, &g); err != nil {
		t.Fatalf("the punned patch % x is safe, check says %v", good, err)
	}
	for _, tt := range tests {
		fn := f
		fn.Entry = tt.entry
		if tt.p.Site == 0 {
			tt.p.Site = jmpTo(tt.p.Bytes, tt.p.Offset) - f.Entry + tt.entry
		}
		if err := checkPatch(fn, &tt.p); err == nil {
			t.Errorf("%s: check accepted % x at +%d", tt.name, tt.p.Bytes, tt.p.Offset)
		} else {
			t.Logf("%s: %v", tt.name, err)
		}
	}
}

// TestScanCheckRejectsEviction makes sure the scan's own eviction checks
// can fail: on internal/reflectlite.(*rtype).Size (mov rcx,[rax];
// mov rax,[rcx]; ret), planned with a nil-checked eviction, the check
// accepts the planner's patch and rejects a stub that tests another
// register, and the same stub after a first instruction that sets flags
// (the check's test would clobber them).
func TestScanCheckRejectsEviction(t *testing.T) {
	code := []byte{0x48, 0x8b, 0x08, 0x48, 0x8b, 0x01, 0xc3}
	b := append(slices.Clone(code), bytes.Repeat([]byte{0xcc}, 25)...)
	f := dispatch.Func{Name: "internal/reflectlite.(*rtype).Size", Entry: 0x4a5040, Size: len(code), Bytes: b}
	pl := dispatch.NewPlanner(&dispatch.Simulated{Taken: []dispatch.Range{{Start: 0x400000, End: 0x3000000}}}, 0x401000, 0x401040)
	pl.NilFault = 0x401080
	p, err := pl.Plan(f, dispatch.SiteMode)
	if err != nil {
		t.Fatal(err)
	}
	if p.Tactic != dispatch.EvictJump || p.Evict == nil || p.Evict.NilCheck != x86asm.RCX {
		t.Fatalf("planned %v, eviction %+v; want evict-jump with a nil check of RCX", p.Tactic, p.Evict)
	}
	if err := checkPatch(f, p); err != nil {
		t.Fatalf("the planner's patch is safe, check says %v", err)
	}
	wrongReg := *p
	ev := *p.Evict
	ev.NilCheck = x86asm.RAX
	wrongReg.Evict = &ev
	if err := checkPatch(f, &wrongReg); err == nil {
		t.Error("check accepted a stub whose nil check names RAX for a load through RCX")
	} else {
		t.Logf("nil check of the wrong register: %v", err)
	}
	flags := f
	flags.Bytes = append([]byte{0x48, 0x31, 0xc9}, b[3:]...) // xor rcx,rcx first
	if err := checkPatch(flags, p); err == nil {
		t.Error("check accepted a nil check after an instruction that sets flags")
	} else {
		t.Logf("after xor rcx,rcx: %v", err)
	}
}
