package unwind

import (
	"debug/elf"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// ErrSelfCheck: this package does not read the running binary's function
// table the way the runtime does, so nothing it says about code can be
// trusted.
var ErrSelfCheck = fmt.Errorf("%w: self-check failed", errPCLN)

// selfCheckSamples is about how many functions the self-check compares
// with the runtime, spread evenly over the table. A misread layout fails
// every one of them; each sample faults in pages of the table around it
// (the kernel maps up to 16 at a time), which the first Set's RSS counts.
const selfCheckSamples = 8

var selfCheck = sync.OnceValue(func() error {
	im, err := Self()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSelfCheck, err)
	}
	return im.check(selfAnchors())
})

// selfAnchors are functions of this package's module, from the start of
// its text to the standard library, that the self-check compares first.
func selfAnchors() []uintptr {
	var anchors []uintptr
	for _, a := range []any{anchor, Self, runtime.GC, sort.Search, elf.Open} {
		anchors = append(anchors, reflect.ValueOf(a).Pointer())
	}
	return anchors
}

// SelfCheck verifies, once per process, that this package reads the
// running binary's function table as the runtime reads it. The table's
// layout is not a public API, and this package knows the one of Go 1.20
// to 1.27 (runtime/symtab.go, _func): a toolchain that changes it must
// make every patch fail, never patch the wrong bytes. It compares a sample
// of functions, plus a few known anchors, with runtime.FuncForPC (entry,
// name, and the last byte of the code) and with the binary's text (the
// bytes past the code are int3 padding, the stack delta at the entry is
// zero; read from the file, which holds the same bytes before any patch,
// so that no page of the mapped text is faulted in for it),
// and finds runtime.morestack, which the planner needs. It costs well
// under a millisecond after Self.
func SelfCheck() error { return selfCheck() }

// check is SelfCheck of one image of this process, given live Go function
// entries of it to compare first.
func (im *Image) check(anchors []uintptr) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSelfCheck, fmt.Sprintf(format, args...))
	}
	t := im.pcln
	if t == nil || t.nfunc < 2 {
		return fail("no function table")
	}
	if t.quantum != 1 {
		return fail("instruction quantum %d, want 1 on amd64", t.quantum)
	}
	for _, pc := range anchors {
		f, ok := im.Lookup(pc)
		rf := runtime.FuncForPC(pc)
		if !ok || rf == nil || f.Entry != pc || rf.Entry() != pc || !sameName(f.Name, rf.Name()) {
			return fail("anchor %s at %#x: table says %q at %#x", rf.Name(), pc, f.Name, f.Entry)
		}
	}
	// Look near the runtime's own code first: morestack is there in every
	// build seen.
	near := im.goIndex(reflect.ValueOf(runtime.GC).Pointer())
	for _, name := range []string{"runtime.morestack", "runtime.morestack_noctxt"} {
		i := t.index(name, near)
		if i < 0 {
			return fail("no %s", name)
		}
		pc := uintptr(t.entry(i)) + im.Bias
		if rf := runtime.FuncForPC(pc); rf == nil || rf.Entry() != pc || rf.Name() != name {
			return fail("%s at %#x: the runtime has %v there", name, pc, rf)
		}
	}
	// Sample the first compiled function of each stride: the table also
	// lists C code linked in (the race detector's) and zero-size markers,
	// which have no pc tables. A layout misread would hide every pcsp
	// table, so at least half the strides must yield a sample.
	step := max(1, t.nfunc/selfCheckSamples)
	strides, checked := 0, 0
	for i := 0; i < t.nfunc-1; i += step {
		strides++
		for j := i; j < min(i+step, t.nfunc-1); j++ {
			if t.u32(t.fn(j), fieldPCSP) == 0 {
				continue
			}
			if err := im.checkFunc(j); err != nil {
				return fail("%v", err)
			}
			checked++
			break
		}
	}
	if checked*2 < strides {
		return fail("only %d of %d sampled functions have pc tables", checked, strides)
	}
	return nil
}

// checkFunc compares the i'th function of the table with the runtime and
// the binary's text.
func (im *Image) checkFunc(i int) error {
	t := im.pcln
	pc := uintptr(t.entry(i)) + im.Bias
	name := t.name(t.fn(i))
	f, ok := im.Lookup(pc)
	rf := runtime.FuncForPC(pc)
	switch {
	case !ok || f.Entry != pc || f.Name != name:
		return fmt.Errorf("function %d %q at %#x: listed as %q at %#x", i, name, pc, f.Name, f.Entry)
	case rf == nil || rf.Entry() != pc:
		return fmt.Errorf("function %d %q at %#x: the runtime has %v there", i, name, pc, rf)
	case rf.Name() != t.printName(i) && !t.inlinedAt(i, 0):
		return fmt.Errorf("function %d at %#x: table says %q, the runtime %q", i, pc, name, rf.Name())
	case f.Size <= 0 || f.Size > f.Room():
		return fmt.Errorf("%s: size %d outside (0, %d]", name, f.Size, f.Room())
	}
	if last := runtime.FuncForPC(pc + uintptr(f.Size) - 1); last == nil || last.Entry() != pc {
		return fmt.Errorf("%s: its last code byte +%d belongs to %v", name, f.Size-1, last)
	}
	code, err := im.Bytes(f)
	if err != nil {
		return err
	}
	for j, b := range code[f.Size:] {
		if b != 0xCC {
			return fmt.Errorf("%s: byte +%d after its code is %#x, not int3 padding", name, f.Size+j, b)
		}
	}
	if sp, ok := t.valueAt(t.u32(t.fn(i), fieldPCSP), 0); !ok || sp != 0 {
		return fmt.Errorf("%s: stack delta at entry %d (ok %v), want 0", name, sp, ok)
	}
	return nil
}

// sameName reports whether the runtime's name of a function, which elides
// type arguments, is the table's name for it.
func sameName(table, runtime string) bool {
	if i, j := strings.IndexByte(table, '['), strings.LastIndexByte(table, ']'); i >= 0 && j > i {
		table = table[:i] + "[...]" + table[j+1:]
	}
	return table == runtime
}

// printName is the name runtime.Func.Name gives function i: none for the
// name at offset 0, and type arguments elided (runtime/traceback.go,
// funcNameForPrint).
func (t *pclntab) printName(i int) string {
	f := t.fn(i)
	if t.u32(f, fieldNameOff) == 0 {
		return ""
	}
	name := t.name(f)
	if i, j := strings.IndexByte(name, '['), strings.LastIndexByte(name, ']'); i >= 0 && j > i {
		return name[:i] + "[...]" + name[j+1:]
	}
	return name
}

// index returns the table index of the named function, or -1. It looks
// outwards from index near first, when near is not -1, then everywhere,
// and compares the table's bytes in place: it touches only the part of a
// large table it has to.
func (t *pclntab) index(name string, near int) (i int) {
	defer func() {
		if recover() != nil {
			i = -1 // a truncated table
		}
	}()
	is := func(i int) bool {
		b := t.funcnames[t.u32(t.fn(i), fieldNameOff):]
		return len(b) > len(name) && b[len(name)] == 0 && string(b[:len(name)]) == name
	}
	if near >= 0 && near < t.nfunc {
		for d := 0; near-d >= 0 || near+d < t.nfunc; d++ {
			if near-d >= 0 && is(near-d) {
				return near - d
			}
			if near+d < t.nfunc && is(near+d) {
				return near + d
			}
		}
		return -1
	}
	for i := range t.nfunc {
		if is(i) {
			return i
		}
	}
	return -1
}

// valueAt returns the value a pc-value table holds at offset pc.
func (t *pclntab) valueAt(off uint32, pc uint64) (v int32, ok bool) {
	if off == 0 {
		return 0, false
	}
	t.pcvalue(off, func(lo, hi uint64, val int32) {
		if lo <= pc && pc < hi {
			v, ok = val, true
		}
	})
	return v, ok
}

// inlinedAt reports whether the table says code inlined into function i
// runs at offset pc, where runtime.FuncForPC names the inlined function.
func (t *pclntab) inlinedAt(i int, pc uint64) bool {
	f := t.fn(i)
	if t.u32(f, fieldNPCData) <= pcdataInlTreeIndex {
		return false
	}
	v, ok := t.valueAt(t.u32(f[funcHeader:], pcdataInlTreeIndex), pc)
	return ok && v >= 0
}
