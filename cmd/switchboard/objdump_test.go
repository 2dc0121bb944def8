//go:build linux && amd64

package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The objdump tests check planned patches with GNU objdump, a decoder that
// shares no code with x86asm, which the planner, dispatch.Verify and the
// other scan tests all use: a decoding mistake they share cannot hide here.
//
// objdump disassembles a flat binary linearly, so the check lays many
// short windows of code into one file, each in its own slot followed by a
// filler of ds prefixes and a nop: an instruction starting in the window
// ends within 15 bytes, inside the filler; from there on objdump reads
// prefixes (at most 14 to an instruction) up to the nop, which ends the
// slot. So every slot starts on an instruction boundary (checked for every
// slot), and the filler costs objdump a line or two instead of one a byte.
// Two files with the same layout, one holding original windows and one
// patched windows, put each pair of windows at the same address, so the
// two decodings, branch targets included, compare as plain text.

// odCase is one patch to check: a function and the bytes a patch writes.
type odCase struct {
	name  string
	entry uint64
	size  int    // bytes of code from the entry; padding follows
	off   int    // patch point, from the entry
	patch []byte // bytes written at off
	site  uint64 // where the patch must jump
	// text is the real text from the entry on, at least odWindow bytes:
	// the function, its padding and whatever follows.
	text []byte
	// For an evict-jump patch: each evicted instruction's jump and stub,
	// in chain order.
	evs []odEvict
}

// odEvict is one evicted instruction: its jump (5 bytes at off, to addr)
// and the stub there. first is the length of the stub's copy of the
// instruction (a branch is widened to rel32); check the length of the nil
// check before it (test r,r; je fault), 0 when there is none.
type odEvict struct {
	off          int
	jump         []byte
	addr         uint64
	stub         []byte
	first, check int
	fault        uint64
}

// link returns the eviction at offset at, or nil.
func (c odCase) link(at int) *odEvict {
	for i := range c.evs {
		if c.evs[i].off == at {
			return &c.evs[i]
		}
	}
	return nil
}

func (c odCase) end() int {
	end := c.off + len(c.patch)
	for _, e := range c.evs {
		end = max(end, e.off+len(e.jump))
	}
	return end
}

// image is the window as a patched thread sees it.
func (c odCase) image() []byte {
	img := bytes.Clone(c.text[:odWindow])
	copy(img[c.off:], c.patch)
	for _, e := range c.evs {
		copy(img[e.off:], e.jump)
	}
	return img
}

const (
	// odWindow is how much text from the entry the linear pass sees: an
	// instruction starting before the patch's end (at most +17) ends
	// within it.
	odWindow  = 32
	odMaxInst = 15 // the longest x86 instruction, and objdump's limit
	// Slots: a window, then filler longer than an instruction starting in
	// the window's last byte.
	odSweepSlot = odWindow + odMaxInst + 1
	odQuerySlot = 2 * (odMaxInst + 1)
	// odBase is the address objdump gives the first slot.
	odBase = 0x1_0000_0000
)

// odInst is one instruction as objdump decoded it.
type odInst struct {
	len  int
	text string
}

// odLine matches one line of objdump -w --insn-width=16: address, bytes,
// instruction text.
var odLine = regexp.MustCompile(`^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t(.*)$`)

// objdumpRun disassembles data as flat x86-64 code at odBase and calls
// visit for every instruction, with its offset in data.
func objdumpRun(bin, dir, name string, data []byte, visit func(off int, in odInst)) error {
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", "-z", "-w",
		"--insn-width=16", fmt.Sprintf("--adjust-vma=%#x", odBase), file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		m := odLine.FindSubmatch(sc.Bytes())
		if m == nil {
			continue // headers, blank lines
		}
		addr, err := strconv.ParseUint(string(m[1]), 16, 64)
		if err != nil || addr < odBase || addr-odBase >= uint64(len(data)) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("objdump: address %q out of range", m[1])
		}
		visit(int(addr-odBase), odInst{len: len(m[2]) / 3, text: strings.Join(strings.Fields(string(m[3])), " ")})
		n++
	}
	scanErr := sc.Err()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("objdump: %v: %s", err, stderr.Bytes())
	}
	if n == 0 {
		return fmt.Errorf("objdump printed no instructions: %s", stderr.Bytes())
	}
	return scanErr
}

// odFiller returns n bytes that end every instruction begun before them at
// their end: n-1 ds prefixes, then a nop.
func odFiller(n int) []byte { return append(bytes.Repeat([]byte{0x3e}, n-1), 0x90) }

// objdumpCheck checks every case with objdump. It returns, per case, what
// objdump disagrees with (nil when nothing), and an error when the check
// itself could not run.
//
// Pass 1 disassembles each function's original text from its entry, which
// gives objdump's own instruction boundaries. Pass 2 disassembles, at the
// patch point and at every original boundary strictly inside the patch and
// inside the code, a window of the patched image and the same window of
// the original image, at the same address: at the patch point objdump must
// see one jmp of exactly the patch's bytes to the site, and at each
// boundary the same instruction (length and text) in both images.
func objdumpCheck(bin, dir string, cases []odCase) (errs []error, boundaries int, err error) {
	errs = make([]error, len(cases))
	fail := func(i int, format string, args ...any) {
		errs[i] = errors.Join(errs[i], fmt.Errorf(format, args...))
	}

	// Pass 1: the original code, linearly from each entry.
	sweep := make([]byte, 0, len(cases)*odSweepSlot)
	for i, c := range cases {
		if len(c.text) < odWindow || c.end() > odWindow-odMaxInst || c.off < 0 || len(c.patch) == 0 {
			return nil, 0, fmt.Errorf("case %d (%s): patch [+%d,+%d) with %d bytes of text does not fit the %d-byte window", i, c.name, c.off, c.end(), len(c.text), odWindow)
		}
		sweep = append(append(sweep, c.text[:odWindow]...), odFiller(odSweepSlot-odWindow)...)
	}
	starts := make([][]odInst, len(cases)) // per case: instruction at each offset < end, by offset
	for i, c := range cases {
		starts[i] = make([]odInst, c.end())
	}
	err = objdumpRun(bin, dir, "sweep.bin", sweep, func(off int, in odInst) {
		i, at := off/odSweepSlot, off%odSweepSlot
		if at < len(starts[i]) {
			starts[i][at] = in
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("pass 1: %w", err)
	}

	// Pass 2: queries at the patch point and at each interior boundary.
	// kind: "jmp" at the patch point, "" at an interior boundary,
	// "evict" at an evicted boundary (a jmp to the stub), "stub" the
	// stub's first instruction (against the original one) and "back" its
	// jump back.
	type query struct {
		i, at int
		kind  string
	}
	var queries []query
	for i, c := range cases {
		if starts[i][0].len == 0 {
			return nil, 0, fmt.Errorf("pass 1 lost instruction sync at slot %d (%s)", i, c.name)
		}
		if starts[i][c.off].len == 0 {
			fail(i, "patch point +%d is not an instruction boundary for objdump", c.off)
			continue
		}
		// The planner decoded every instruction; objdump must too.
		for at, in := range starts[i][:min(c.end(), c.size)] {
			if in.len != 0 && strings.Contains(in.text, "(bad)") {
				fail(i, "objdump cannot decode the original instruction at +%d", at)
			}
		}
		queries = append(queries, query{i, c.off, "jmp"})
		evicted := 0
		for at := c.off + 1; at < c.end() && at < c.size; at++ {
			e := c.link(at)
			switch {
			case starts[i][at].len == 0:
			case e != nil:
				evicted++
				queries = append(queries, query{i, at, "evict"}, query{i, at, "stub"})
				if e.check > 0 {
					queries = append(queries, query{i, at, "test"}, query{i, at, "je"})
				}
				text := starts[i][at].text
				if n := e.check + e.first; n < len(e.stub) {
					queries = append(queries, query{i, at, "back"})
				} else if n != len(e.stub) || !strings.HasPrefix(text, "ret") && !strings.HasPrefix(text, "jmp") {
					fail(i, "stub % x holds only the %d-byte %q and no jump back", e.stub, n, text)
				}
			default:
				queries = append(queries, query{i, at, ""})
			}
		}
		if evicted != len(c.evs) {
			fail(i, "evictions %v: %d are not instruction boundaries for objdump", c.evs, len(c.evs)-evicted)
		}
	}
	var orig, patched []byte
	for _, q := range queries {
		c := cases[q.i]
		img := c.image()
		o, p := c.text[q.at:q.at+odMaxInst], img[q.at:q.at+odMaxInst]
		e := c.link(q.at)
		switch q.kind {
		case "stub":
			p = e.stub[e.check:]
		case "back":
			p = e.stub[e.check+e.first:]
		case "test":
			p = e.stub[:e.check]
		case "je":
			p = e.stub[3:e.check]
		}
		orig = append(append(orig, o...), odFiller(odQuerySlot-len(o))...)
		patched = append(append(patched, p...), odFiller(odQuerySlot-len(p))...)
	}
	decoded := [2][]odInst{make([]odInst, len(queries)), make([]odInst, len(queries))}
	var wg sync.WaitGroup
	var runErr [2]error
	for k, data := range [2][]byte{orig, patched} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runErr[k] = objdumpRun(bin, dir, fmt.Sprintf("query%d.bin", k), data, func(off int, in odInst) {
				if off%odQuerySlot == 0 {
					decoded[k][off/odQuerySlot] = in
				}
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(runErr[0], runErr[1]); err != nil {
		return nil, 0, fmt.Errorf("pass 2: %w", err)
	}
	for n, q := range queries {
		c := cases[q.i]
		o, p := decoded[0][n], decoded[1][n]
		if o.len == 0 || p.len == 0 {
			return nil, 0, fmt.Errorf("pass 2 lost instruction sync at query %d (%s +%d)", n, c.name, q.at)
		}
		vma := odBase + uint64(n*odQuerySlot)
		e := c.link(q.at)
		switch q.kind {
		case "jmp":
			if err := checkObjdumpJump(c, p, vma); err != nil {
				fail(q.i, "%v", err)
			}
			continue
		case "evict":
			// The second jump, as a one-jump patch at the evicted boundary.
			ec := odCase{name: c.name, entry: c.entry, off: e.off, patch: e.jump, site: e.addr}
			if err := checkObjdumpJump(ec, p, vma); err != nil {
				fail(q.i, "eviction: %v", err)
			}
			continue
		case "test":
			// The nil check tests the register the original dereferences.
			m := odMemBase.FindStringSubmatch(o.text)
			if m == nil || p.text != "test "+m[1]+","+m[1] || p.len != 3 {
				fail(q.i, "stub of boundary +%d: nil check %q (%d bytes) for the original %q", q.at, p.text, p.len, o.text)
			}
			continue
		case "je":
			// ... and jumps to the nil-fault stub when it is zero.
			m := odBranch.FindStringSubmatch(p.text)
			var to uint64
			if m != nil {
				to, _ = strconv.ParseUint(m[2], 16, 64)
			}
			if m == nil || m[1] != "je" || p.len != e.check-3 || to-vma+e.addr+3 != e.fault {
				fail(q.i, "stub of boundary +%d: %q after the nil check, not je to the nil-fault stub %#x", q.at, p.text, e.fault)
			}
			continue
		case "back":
			// Seen from the stub: a jmp to the original's next boundary.
			n := uint64(e.check + e.first)
			bc := odCase{name: c.name, entry: e.addr, off: int(n), patch: e.stub[n:], site: c.entry + uint64(e.off) + uint64(o.len)}
			if err := checkObjdumpJump(bc, p, vma); err != nil {
				fail(q.i, "stub's jump back: %v", err)
			}
			continue
		case "stub":
			// A direct branch is re-encoded: the same mnemonic, and the
			// same absolute target once each side's own address is put
			// back in place of the query's.
			if om, pm := odBranch.FindStringSubmatch(o.text), odBranch.FindStringSubmatch(p.text); om != nil || pm != nil {
				boundaries++
				var ot, pt uint64
				if om != nil && pm != nil {
					ot, _ = strconv.ParseUint(om[2], 16, 64)
					pt, _ = strconv.ParseUint(pm[2], 16, 64)
				}
				if om == nil || pm == nil || om[1] != pm[1] || ot-vma+c.entry+uint64(e.off) != pt-vma+e.addr || p.len != e.first {
					fail(q.i, "stub of boundary +%d: %q (%d bytes), original %q", q.at, p.text, p.len, o.text)
				}
				continue
			}
		}
		if o.len != starts[q.i][q.at].len {
			return nil, 0, fmt.Errorf("%s +%d: objdump decodes %d bytes in the linear pass and %d from the boundary", c.name, q.at, starts[q.i][q.at].len, o.len)
		}
		boundaries++
		if p != o {
			where := "boundary"
			if q.kind == "stub" {
				where = "stub of boundary"
			}
			fail(q.i, "%s +%d: patched image decodes as %q (%d bytes), original as %q (%d bytes)", where, q.at, p.text, p.len, o.text, o.len)
		}
	}
	return errs, boundaries, nil
}

// odMemBase matches the one memory operand of an instruction with a base
// register and no index: "QWORD PTR [rcx]", "BYTE PTR [rax+0x1c9]".
var odMemBase = regexp.MustCompile(`PTR \[([a-z0-9]+)(?:\+0x[0-9a-f]+)?\]`)

// odBranch matches a direct jmp or jcc: mnemonic, target.
var odBranch = regexp.MustCompile(`^(j[a-z]+) 0x([0-9a-f]+)$`)

// odJump matches objdump's text for a direct jmp after optional prefixes:
// "jmp 0x1234", "ds jmp 0x1234", "es ss rex.B jmp 0x1234".
var odJump = regexp.MustCompile(`^(?:(?:[ecsdfg]s|rex(?:\.[WRXB]+)?) )*jmp 0x([0-9a-f]+)$`)

// checkObjdumpJump checks that the patched image decodes at the patch point,
// placed at vma, as one jmp spanning exactly the patch, to the site.
func checkObjdumpJump(c odCase, in odInst, vma uint64) error {
	m := odJump.FindStringSubmatch(in.text)
	if m == nil || in.len != len(c.patch) {
		return fmt.Errorf("patch % x at +%d decodes as %q (%d bytes), not one %d-byte jmp", c.patch, c.off, in.text, in.len, len(c.patch))
	}
	to, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		return fmt.Errorf("jmp target %q: %v", m[1], err)
	}
	// Relative to the patch point, in 64-bit wrapping arithmetic.
	if got, want := to-vma, c.site-(c.entry+uint64(c.off)); got != want {
		return fmt.Errorf("patch % x at +%d jumps to %#x, the site is %#x", c.patch, c.off, c.entry+uint64(c.off)+got, c.site)
	}
	return nil
}

// objdumpPath returns GNU objdump, or skips the test.
func objdumpPath(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("objdump")
	if err != nil {
		t.Skipf("no objdump (Debian: apt-get install binutils): %v", err)
	}
	// One nop: the build must know x86-64 and flat binaries.
	dir := t.TempDir()
	err = objdumpRun(bin, dir, "probe.bin", []byte{0x90}, func(int, odInst) {})
	if err != nil {
		t.Skipf("%s cannot disassemble flat x86-64 code: %v", bin, err)
	}
	return bin
}

// odElfText returns a reader of a binary's executable bytes by address.
func odElfText(t *testing.T, path string) func(addr uint64, n int) []byte {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	type seg struct {
		addr uint64
		data []byte
	}
	var segs []seg
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			t.Fatalf("%s: reading the text segment: %v", path, err)
		}
		segs = append(segs, seg{p.Vaddr, data})
	}
	return func(addr uint64, n int) []byte {
		for _, s := range segs {
			if addr >= s.addr && addr+uint64(n) <= s.addr+uint64(len(s.data)) {
				return s.data[addr-s.addr : addr-s.addr+uint64(n)]
			}
		}
		return nil
	}
}

// TestScanCompileObjdump checks every patch the scan of the Go compiler
// plans with objdump (see objdumpCheck). It also checks, in the same
// objdump runs, controls that must fail: real patches with one pinned rel32
// byte flipped (and the site moved to where the flipped jump lands, so only
// the boundary check can catch it), and real patches checked against a site
// one byte off (only the jump check can catch it).
func TestScanCompileObjdump(t *testing.T) {
	if raceEnabled() {
		t.Skip("the scan of compile takes minutes under -race; the objdump check is about the planner's output, not concurrency")
	}
	bin := objdumpPath(t)
	path := compilePath(t)
	start := time.Now()
	rep, err := scanBinary(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	scanned := time.Since(start)
	text := odElfText(t, path)

	var cases []odCase
	const controls = 25 // of each kind
	type control struct {
		i    int    // case index
		kind string // "pin" or "site"
	}
	var ctl []control
	evictions, stubCtl := 0, 0
	for _, r := range rep.results {
		p := r.patch
		if p == nil {
			continue
		}
		c := odCase{name: r.fn.Name, entry: uint64(r.fn.Entry), size: r.fn.Size, off: p.Offset,
			patch: p.Bytes, site: uint64(p.Site), text: text(uint64(r.fn.Entry), odWindow)}
		for ev := p.Evict; ev != nil; ev = ev.Next {
			e := odEvict{off: ev.Offset, jump: ev.Jump, addr: uint64(ev.Addr), stub: ev.Code}
			if ev.NilCheck != 0 {
				e.check, e.fault = 9, uint64(ev.Fault)
			}
			// Its first instruction's length, from the planner's side:
			// objdump then checks the bytes either side of it.
			e.first = stubFirstLen(ev.Code[e.check:])
			c.evs = append(c.evs, e)
			evictions++
		}
		if c.text == nil {
			t.Fatalf("%s %#x: no %d bytes of text at the entry", c.name, c.entry, odWindow)
		}
		cases = append(cases, c)
		if len(c.evs) > 0 {
			// Control: the last stub's copy of the instruction corrupted.
			if stubCtl < 5 {
				stubCtl++
				bad := c
				bad.evs = slices.Clone(c.evs)
				e := &bad.evs[len(bad.evs)-1]
				e.stub = bytes.Clone(e.stub)
				e.stub[e.check] ^= 0x08
				ctl = append(ctl, control{len(cases), "stub"})
				cases = append(cases, bad)
			}
			continue // its pins are shared with the second jump
		}
		n := len(ctl) - stubCtl
		if n < 2*controls && p.Pins.Mask != 0 && n%2 == 0 {
			bad := c
			bad.patch = bytes.Clone(p.Bytes)
			rel := len(bad.patch) - 4
			for k := range 4 {
				if p.Pins.Mask>>(8*k)&0xff != 0 {
					bad.patch[rel+k] ^= 0xff
					break
				}
			}
			// Where the flipped jump lands, so the jump check passes.
			relv := int32(uint32(bad.patch[rel]) | uint32(bad.patch[rel+1])<<8 | uint32(bad.patch[rel+2])<<16 | uint32(bad.patch[rel+3])<<24)
			bad.site = c.entry + uint64(c.end()) + uint64(int64(relv))
			ctl = append(ctl, control{len(cases), "pin"})
			cases = append(cases, bad)
		} else if n < 2*controls && n%2 == 1 {
			bad := c
			bad.site++
			ctl = append(ctl, control{len(cases), "site"})
			cases = append(cases, bad)
		}
	}
	isControl := map[int]string{}
	for _, c := range ctl {
		isControl[c.i] = c.kind
	}

	start, childCPU := time.Now(), childrenCPU(t)
	errs, boundaries, err := objdumpCheck(bin, t.TempDir(), cases)
	if err != nil {
		t.Fatal(err)
	}
	checked, childCPU := time.Since(start), childrenCPU(t)-childCPU

	bad, caught := 0, 0
	for i, c := range cases {
		kind, ctrl := isControl[i]
		switch {
		case ctrl && errs[i] == nil:
			t.Errorf("control %s of %s %#x (patch % x, site %#x): objdump check accepted it", kind, c.name, c.entry, c.patch, c.site)
		case ctrl && kind == "pin" && !strings.Contains(errs[i].Error(), "boundary"):
			t.Errorf("control pin of %s: caught, but not at a boundary: %v", c.name, errs[i])
		case ctrl && kind == "stub" && !strings.Contains(errs[i].Error(), "stub"):
			t.Errorf("control stub of %s: caught, but not in the stub: %v", c.name, errs[i])
		case ctrl:
			caught++
		case errs[i] != nil:
			if bad++; bad <= 20 {
				t.Errorf("objdump disagrees: %s %#x, patch % x at +%d, first bytes % x: %v", c.name, c.entry, c.patch, c.off, c.text[:16], errs[i])
			}
		}
	}
	if bad > 20 {
		t.Errorf("... and %d more patches objdump disagrees with", bad-20)
	}
	if caught != len(ctl) || len(ctl) < controls || evictions > 0 && stubCtl == 0 {
		t.Errorf("caught %d of %d controls", caught, len(ctl))
	}
	t.Logf("objdump checked %d patched functions of %s (%d refused by the planner, %d evictions) and %d interior boundaries and stubs, caught %d of %d corrupted controls; scan %v, objdump %v (%v of objdump's CPU)",
		len(cases)-len(ctl), path, len(rep.results)-(len(cases)-len(ctl)), evictions, boundaries, caught, len(ctl), scanned.Round(time.Millisecond), checked.Round(time.Millisecond), childCPU.Round(time.Millisecond))
}

// childrenCPU is the CPU time, user and system, of this process's finished
// children.
func childrenCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestObjdumpCheckRejects shows the objdump check failing on hand-made
// patches of real byte sequences, and passing their safe versions.
func TestObjdumpCheckRejects(t *testing.T) {
	bin := objdumpPath(t)
	pad := func(code ...byte) []byte {
		return append(code, bytes.Repeat([]byte{0xcc}, odWindow)...)
	}
	const entry = 0x401000
	// jmpTo is where patch b written at +off of entry lands.
	jmpTo := func(b []byte, off int) uint64 {
		n := len(b)
		rel := int32(uint32(b[n-4]) | uint32(b[n-3])<<8 | uint32(b[n-2])<<16 | uint32(b[n-1])<<24)
		return entry + uint64(off+n) + uint64(int64(rel))
	}
	// inc rax; ret: the safe patch keeps ff c0 c3 as the rel32's low bytes.
	inc := pad(0x48, 0xff, 0xc0, 0xc3)
	// cmp rsp,[r14+0x10]; jbe +0x2f: the safe patch keeps jbe's 76.
	std := pad(0x49, 0x3b, 0x66, 0x10, 0x76, 0x2f, 0x55, 0x48, 0x89, 0xe5)
	// nop; add rax,rbx; ret, patched past the nop.
	nop := pad(0x90, 0x48, 0x01, 0xd8, 0xc3)
	tests := []struct {
		name  string
		text  []byte
		size  int
		off   int
		patch []byte
		site  uint64 // 0: where the patch lands
		good  bool
	}{
		{name: "inc-punned", text: inc, size: 4, patch: []byte{0xe9, 0xff, 0xc0, 0xc3, 0xcc}, good: true},
		{name: "inc-breaks-ret", text: inc, size: 4, patch: []byte{0xe9, 0xff, 0xc0, 0x00, 0xcc}},
		{name: "inc-wrong-site", text: inc, size: 4, patch: []byte{0xe9, 0xff, 0xc0, 0xc3, 0xcc}, site: 0x1234},
		// 66 makes the jump rel16, which AMD honours.
		{name: "inc-prefix-66", text: inc, size: 4, patch: []byte{0x66, 0xe9, 0xff, 0xc0, 0xc3, 0xcc}},
		{name: "std-punned", text: std, size: 10, patch: []byte{0xe9, 0x00, 0x00, 0x00, 0x76}, good: true},
		{name: "std-breaks-jbe", text: std, size: 10, patch: []byte{0xe9, 0x00, 0x00, 0x00, 0x77}},
		{name: "std-prefixed-punned", text: std, size: 10, patch: []byte{0x3e, 0xe9, 0x00, 0x00, 0x76, 0x2f}, good: true},
		{name: "nop-past", text: nop, size: 5, off: 1, patch: []byte{0xe9, 0x00, 0x00, 0xc3, 0xcc}, good: true},
		{name: "nop-inside-add", text: nop, size: 5, off: 2, patch: []byte{0xe9, 0x00, 0x00, 0xcc, 0xcc}},
	}
	var cases []odCase
	for _, tt := range tests {
		c := odCase{name: tt.name, entry: entry, size: tt.size, off: tt.off, patch: tt.patch, site: tt.site, text: tt.text}
		if c.site == 0 {
			c.site = jmpTo(tt.patch, tt.off)
		}
		cases = append(cases, c)
	}
	errs, _, err := objdumpCheck(bin, t.TempDir(), cases)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		switch {
		case tt.good && errs[i] != nil:
			t.Errorf("%s: safe patch % x rejected: %v", tt.name, tt.patch, errs[i])
		case !tt.good && errs[i] == nil:
			t.Errorf("%s: bad patch % x accepted", tt.name, tt.patch)
		case !tt.good:
			t.Logf("%s: %v", tt.name, errs[i])
		}
	}
}

// stubFirstLen is the length of an eviction stub's first instruction: the
// whole stub for a ret or a jmp, else the stub less its 5-byte jump back.
func stubFirstLen(code []byte) int {
	if len(code) == 1 && code[0] == 0xC3 || len(code) == 5 && code[0] == 0xE9 {
		return len(code)
	}
	return len(code) - 5
}
