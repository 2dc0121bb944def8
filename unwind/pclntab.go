package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// pclntab reads the Go 1.20+ function table (.gopclntab), which every Go
// binary keeps even when stripped (go test links with -s -w). debug/gosym
// parses the same format but exposes neither code sizes nor inline ranges,
// which Switchboard needs: a function's code ends where its pcsp table
// ends, and PCDATA_InlTreeIndex marks the code inlined into it. The layout
// is documented in runtime/symtab.go (_func) and debug/gosym/pclntab.go.
type pclntab struct {
	data      []byte
	ptrSize   int
	quantum   uint64
	nfunc     int
	textStart uint64
	funcnames []byte
	pctab     []byte
	functab   []byte
}

const (
	pclnMagic120 = 0xfffffff1
	// _func fields are uint32s; these are their indexes.
	fieldEntryOff = 0
	fieldNameOff  = 1
	fieldPCSP     = 4
	fieldNPCData  = 7
	funcHeader    = 44 // bytes before the pcdata offsets
	// pcdataInlTreeIndex is PCDATA_InlTreeIndex (internal/abi).
	pcdataInlTreeIndex = 2
)

var errPCLN = errors.New("unsupported .gopclntab")

// parsePclntab reads the table. The header's text start is left zero by
// the linker, so the caller supplies the address of runtime.text.
func parsePclntab(data []byte, textStart uint64) (t *pclntab, err error) {
	defer func() {
		if recover() != nil {
			t, err = nil, fmt.Errorf("%w: truncated", errPCLN)
		}
	}()
	if len(data) < 16 || binary.LittleEndian.Uint32(data) != pclnMagic120 || data[4] != 0 || data[5] != 0 {
		return nil, fmt.Errorf("%w: not the Go 1.20+ little-endian format", errPCLN)
	}
	t = &pclntab{data: data, quantum: uint64(data[6]), ptrSize: int(data[7])}
	if t.ptrSize != 8 {
		return nil, fmt.Errorf("%w: pointer size %d", errPCLN, t.ptrSize)
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8+i*8:]) }
	t.nfunc = int(word(0))
	t.textStart = textStart
	t.funcnames = data[word(3):]
	t.pctab = data[word(6):]
	t.functab = data[word(7):]
	return t, nil
}

func (t *pclntab) u32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }

// fn returns the raw _func of the i'th function.
func (t *pclntab) fn(i int) []byte {
	return t.functab[t.u32(t.functab, 2*i+1):]
}

func (t *pclntab) entry(i int) uint64 { return t.textStart + uint64(t.entryOff(i)) }

func (t *pclntab) entryOff(i int) uint32 { return t.u32(t.functab, 2*i) }

func (t *pclntab) name(f []byte) string {
	b := t.funcnames[t.u32(f, fieldNameOff):]
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// pcvalue walks one pc-value table from entry, calling visit for each run
// [pc, end) with its value. It returns the end of the last run.
func (t *pclntab) pcvalue(off uint32, visit func(pc, end uint64, val int32)) uint64 {
	p := t.pctab[off:]
	var pc uint64
	val := int32(-1)
	for first := true; ; first = false {
		uv, n := binary.Uvarint(p)
		if n <= 0 || uv == 0 && !first {
			return pc
		}
		p = p[n:]
		if uv&1 != 0 {
			val += int32(^(uv >> 1))
		} else {
			val += int32(uv >> 1)
		}
		d, n := binary.Uvarint(p)
		if n <= 0 {
			return pc
		}
		p = p[n:]
		end := pc + d*t.quantum
		if visit != nil {
			visit(pc, end, val)
		}
		pc = end
	}
}

// funcs lists the Go functions with exact code sizes: the span of the
// pcsp table, which the compiler emits for every instruction and the
// linker's alignment padding lacks. The last one ends at the table's end
// entry (etext), not at the end of .text, where an external linker may have
// put C code.
func (t *pclntab) funcs() (out []Func, err error) {
	defer func() {
		if recover() != nil {
			out, err = nil, fmt.Errorf("%w: truncated function table", errPCLN)
		}
	}()
	out = make([]Func, 0, t.nfunc)
	for i := range t.nfunc {
		out = append(out, t.function(i))
	}
	return out, nil
}

// function returns the i'th function, at its file address. It panics on a
// truncated table.
func (t *pclntab) function(i int) Func {
	f := t.fn(i)
	entry := t.entry(i)
	next := t.entry(i + 1) // the table has nfunc+1 entries
	size := next - entry
	if off := t.u32(f, fieldPCSP); off != 0 {
		size = min(size, t.pcvalue(off, nil))
	}
	return Func{Name: t.name(f), Entry: uintptr(entry), Size: int(size), Next: uintptr(next), Go: true}
}

// inlining reports whether the compiler inlined anything into any
// function: whether one has PCDATA_InlTreeIndex. A binary built with
// -gcflags=all=-l has none, the runtime included.
func (t *pclntab) inlining() (found bool, err error) {
	defer func() {
		if recover() != nil {
			found, err = false, fmt.Errorf("%w: truncated pcdata", errPCLN)
		}
	}()
	for i := range t.nfunc {
		f := t.fn(i)
		if t.u32(f, fieldNPCData) <= pcdataInlTreeIndex {
			continue
		}
		if binary.LittleEndian.Uint32(f[funcHeader+4*pcdataInlTreeIndex:]) != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Fields of _func for the source file, after those above.
const (
	fieldPCFile   = 5
	fieldCUOffset = 8
)

// file returns the source file at function i's entry: its pcfile table
// gives an index into its compilation unit's part of the cutab, which
// gives an offset into the filetab (runtime/symtab.go, funcfile).
func (t *pclntab) file(i int) (name string, ok bool) {
	defer func() {
		if recover() != nil {
			name, ok = "", false // a truncated table
		}
	}()
	f := t.fn(i)
	v, ok := t.valueAt(t.u32(f, fieldPCFile), 0)
	if !ok || v < 0 {
		return "", false
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(t.data[8+i*8:]) }
	cutab, filetab := t.data[word(4):], t.data[word(5):]
	off := t.u32(cutab, int(t.u32(f, fieldCUOffset))+int(v))
	if off == ^uint32(0) {
		return "", false
	}
	b := filetab[off:]
	for j, c := range b {
		if c == 0 {
			return string(b[:j]), true
		}
	}
	return "", false
}
