package unwind

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// The inline trees of .gopclntab: each function's FUNCDATA_InlTree lists
// the calls inlined into it that left an instruction (their own, or one of
// a call inlined into them). The funcdata offsets are relative to the
// runtime's moduledata.gofunc, which no table header records: it is found
// in the module's moduledata, the word before epclntab (the layout differs
// between Go 1.26 and 1.27, the order of these fields does not), and
// checked against the sections and, in the running process, against
// runtime.FuncForPC's names for inlined code.
const (
	fieldNFuncData  = 43 // byte offset of _func.nfuncdata
	funcdataInlTree = 3  // FUNCDATA_InlTree (internal/abi)
	inlinedCallSize = 16 // abi.InlinedCall: funcID, 3 pad bytes, nameOff, parentPc, startLine
)

// ErrNoInlineTrees: the image's inline trees cannot be located or did not
// pass the check.
var ErrNoInlineTrees = errors.New("the inline trees of .gopclntab cannot be read")

// treeIndex maps the name of every function inlined somewhere to the
// functions it was inlined into (by index). It is keyed by the name, not
// its offset, so that two symbols of one name could not hide each other.
type treeIndex struct {
	into map[string][]int32
}

// InlinedCopies returns the functions into which the table says the
// compiler inlined the Go function entered at entry, where the inlined
// copy left an instruction. It says nothing about copies that left none.
// The first call reads every function's tree (a few milliseconds for
// 40,000 functions).
func (im *Image) InlinedCopies(entry uintptr) ([]string, error) {
	i := im.goIndex(entry)
	if i < 0 || uint64(entry-im.Bias) != im.pcln.entry(i) {
		return nil, fmt.Errorf("unwind: %#x is no Go function's entry", entry)
	}
	im.treesOnce.Do(func() { im.trees, im.treesErr = im.readTrees() })
	if im.treesErr != nil {
		return nil, im.treesErr
	}
	var out []string
	for _, j := range im.trees.into[im.pcln.name(im.pcln.fn(i))] {
		out = append(out, im.pcln.name(im.pcln.fn(int(j))))
	}
	return out, nil
}

func (im *Image) readTrees() (x *treeIndex, err error) {
	defer func() {
		if recover() != nil {
			x, err = nil, fmt.Errorf("unwind: %w: truncated", ErrNoInlineTrees)
		}
	}()
	candidates, err := im.gofunc()
	if err != nil {
		return nil, fmt.Errorf("unwind: %w: %v", ErrNoInlineTrees, err)
	}
	// A word of moduledata other than epclntab may hold the same address:
	// the first candidate whose trees pass the checks is gofunc.
	for _, gofunc := range candidates {
		if x, err = im.readTreesAt(gofunc); err == nil {
			return x, nil
		}
	}
	return nil, err
}

// readTreesAt reads every function's tree with gofunc's bytes at gofunc.
func (im *Image) readTreesAt(gofunc []byte) (x *treeIndex, err error) {
	defer func() {
		if recover() != nil {
			x, err = nil, fmt.Errorf("unwind: %w: a tree runs past its section", ErrNoInlineTrees)
		}
	}()
	t := im.pcln
	byOff := map[uint32][]int32{}
	checked := 0
	for i := range t.nfunc {
		f := t.fn(i)
		tree, n, ok := t.inlTree(f, gofunc)
		if !ok {
			continue
		}
		for k := range n {
			e := tree[k*inlinedCallSize:]
			name := binary.LittleEndian.Uint32(e[4:])
			if int(name) >= len(t.funcnames) || name > 0 && t.funcnames[name-1] != 0 || t.funcnames[name] == 0 {
				return nil, fmt.Errorf("unwind: %w: %s's tree names offset %#x, no name's start", ErrNoInlineTrees, t.name(f), name)
			}
			if into := byOff[name]; len(into) == 0 || into[len(into)-1] != int32(i) {
				byOff[name] = append(into, int32(i))
			}
		}
		if im.live && checked < 8 {
			if err := t.checkTree(f, tree, im.Bias); err != nil {
				return nil, fmt.Errorf("unwind: %w: %v", ErrNoInlineTrees, err)
			}
			checked++
		}
	}
	if im.live && checked == 0 {
		return nil, fmt.Errorf("unwind: %w: no inline tree to check", ErrNoInlineTrees)
	}
	x = &treeIndex{into: make(map[string][]int32, len(byOff))}
	for off, into := range byOff {
		name := t.nameAt(off)
		x.into[name] = append(x.into[name], into...)
	}
	return x, nil
}

// inlTree returns function f's inline tree and its number of entries: one
// more than the largest index its PCDATA_InlTreeIndex uses (a parent is
// added before its children, so every entry is at most that).
func (t *pclntab) inlTree(f []byte, gofunc []byte) (tree []byte, n int, ok bool) {
	npc := int(t.u32(f, fieldNPCData))
	if npc <= pcdataInlTreeIndex || int(f[fieldNFuncData]) <= funcdataInlTree {
		return nil, 0, false
	}
	pcOff := binary.LittleEndian.Uint32(f[funcHeader+4*pcdataInlTreeIndex:])
	off := binary.LittleEndian.Uint32(f[funcHeader+4*npc+4*funcdataInlTree:])
	if pcOff == 0 || off == ^uint32(0) {
		return nil, 0, false
	}
	top := int32(-1)
	t.pcvalue(pcOff, func(_, _ uint64, val int32) { top = max(top, val) })
	if top < 0 {
		return nil, 0, false
	}
	n = int(top) + 1
	return gofunc[off : int(off)+n*inlinedCallSize], n, true
}

// checkTree compares each entry of a live function's tree that its code
// uses with the name runtime.FuncForPC gives that code.
func (t *pclntab) checkTree(f, tree []byte, bias uintptr) error {
	entry := t.textStart + uint64(t.u32(f, fieldEntryOff))
	var err error
	t.pcvalue(binary.LittleEndian.Uint32(f[funcHeader+4*pcdataInlTreeIndex:]), func(pc, _ uint64, val int32) {
		if val < 0 || err != nil {
			return
		}
		rf := runtime.FuncForPC(uintptr(entry+pc) + bias)
		want := ""
		if rf != nil {
			want = rf.Name()
		}
		name := binary.LittleEndian.Uint32(tree[int(val)*inlinedCallSize+4:])
		if got := t.nameAt(name); got != want {
			err = fmt.Errorf("%s+%#x: the tree says %q, the runtime %q", t.name(f), pc, got, want)
		}
	})
	return err
}

// nameAt returns the function name at off in the function name table.
func (t *pclntab) nameAt(off uint32) string {
	b := t.funcnames[off:]
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// gofunc returns the candidates for the bytes from moduledata.gofunc to
// the end of the read-only data holding it.
func (im *Image) gofunc() ([][]byte, error) {
	var tab *elf.Section
	for _, name := range pclntabSections {
		if tab = im.file.Section(name); tab != nil {
			break
		}
	}
	if tab == nil {
		return nil, errors.New("no .gopclntab section")
	}
	bias := uint64(0)
	if im.live {
		bias = uint64(im.Bias)
	}
	start, end := tab.Addr+bias, tab.Addr+tab.Size+bias
	var candidates [][]byte
	// runtime.firstmoduledata: in .go.module since Go 1.26, in .noptrdata
	// before.
	for _, name := range []string{".go.module", ".noptrdata"} {
		sec := im.file.Section(name)
		if sec == nil || sec.Type == elf.SHT_NOBITS {
			continue
		}
		var words []byte
		if im.live {
			at := unsafe.Add(unsafe.Pointer(nil), uintptr(sec.Addr)+im.Bias)
			words = unsafe.Slice((*byte)(at), sec.Size)
		} else {
			var err error
			if words, err = sec.Data(); err != nil {
				return nil, err
			}
		}
		word := func(i int) uint64 { return binary.LittleEndian.Uint64(words[i:]) }
		for i := 0; i+16 <= len(words); i += 8 {
			// moduledata begins with pcHeader and funcnametab's pointer.
			if word(i) != start || word(i+8) < start || word(i+8) >= end {
				continue
			}
			for k := 20; k < 64 && i+8*k+8 <= len(words); k++ {
				if word(i+8*k) != end {
					continue
				}
				// ..., rodata, gofunc, epclntab.
				gofunc := word(i + 8*(k-1))
				if s := im.roSection(gofunc - bias); s != nil {
					b, err := im.sectionFrom(s, gofunc-bias)
					if err != nil {
						return nil, err
					}
					candidates = append(candidates, b)
				}
			}
		}
	}
	if len(candidates) == 0 {
		return nil, errors.New("no moduledata refers to the table")
	}
	return candidates, nil
}

// roSection returns the allocated, non-writable, non-executable section
// holding the file address a.
func (im *Image) roSection(a uint64) *elf.Section {
	for _, s := range im.file.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Flags&(elf.SHF_WRITE|elf.SHF_EXECINSTR) == 0 && s.Type != elf.SHT_NOBITS &&
			s.Addr <= a && a < s.Addr+s.Size {
			return s
		}
	}
	return nil
}

// sectionFrom returns section s's bytes from file address a: mapped memory
// in the running process, read from the file otherwise.
func (im *Image) sectionFrom(s *elf.Section, a uint64) ([]byte, error) {
	if im.live {
		at := unsafe.Add(unsafe.Pointer(nil), uintptr(a)+im.Bias)
		return unsafe.Slice((*byte)(at), s.Addr+s.Size-a), nil
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	return data[a-s.Addr:], nil
}
