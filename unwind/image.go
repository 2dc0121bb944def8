package unwind

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/ianlancetaylor/demangle"
)

// Func is one function of an image, at its load address.
type Func struct {
	Name  string
	Entry uintptr
	// Size is the length of its code. Bytes from Entry+Size up to Next
	// are padding that no thread executes.
	Size int
	// Next is the address of the next symbol, or the end of the section.
	Next uintptr
	// Go reports whether the runtime knows the function (it has pc tables).
	Go bool
}

// Room is the number of bytes from the entry to the next symbol.
func (f Func) Room() int { return int(f.Next - f.Entry) }

// Range is a half-open address range [Start, End).
type Range struct{ Start, End uintptr }

// Image is one ELF binary: its functions and load segments at the address
// it is (or would be) loaded at.
type Image struct {
	Path string
	// Bias is added to every file address: zero for a non-PIE binary.
	Bias uintptr
	// live marks the image of the running process (Self).
	live bool

	file  *elf.File
	syms  []elf.Symbol
	pcln  *pclntab
	funcs []Func
	loads []Range

	// InlineSource says where Inlined looks, once it has run: "DWARF"
	// (then .gopclntab for functions DWARF does not describe) or
	// "pclntab".
	InlineSource string

	inlineOnce sync.Once
	inl        dwarfInline
	anyInline  bool // some function of .gopclntab has inlined code
	inlineErr  error

	textOnce sync.Once
	text     map[*elf.Section][]byte
}

// Open reads the functions of the ELF binary at path, at its link-time
// addresses.
func Open(path string) (*Image, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("unwind: %w", err)
	}
	im := &Image{Path: path, file: f}
	if err := im.load(); err != nil {
		f.Close()
		return nil, fmt.Errorf("unwind: %s: %w", path, err)
	}
	return im, nil
}

var self struct {
	once sync.Once
	im   *Image
	err  error
}

// anchor is a function whose runtime address fixes where this process's
// Go text starts.
func anchor() {}

// Self returns the image of the running binary, at its load address. It is
// read once. The Go text start comes from anchor's live address, exactly;
// the load bias of the other addresses from /proc/self/maps.
func Self() (*Image, error) {
	self.once.Do(func() {
		self.im, self.err = openSelf()
	})
	return self.im, self.err
}

func openSelf() (*Image, error) {
	live := reflect.ValueOf(anchor).Pointer()
	if m, ok := moduleAt(live); ok && !m.Main {
		// A c-shared library loaded by a C (or other) host: the Go
		// runtime, and this code, live in the library, not in the
		// executable.
		return openModule(m.Path, m.Bias, live)
	}
	im, err := Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	bias, err := loadBias(im.file)
	if err != nil {
		return nil, fmt.Errorf("unwind: %w", err)
	}
	if err := im.fixTextStart(live, bias); err != nil {
		return nil, err
	}
	im.rebase(bias)
	im.live = true
	return im, nil
}

// moduleAt returns the mapped object holding pc, if /proc/self/maps can be
// read.
func moduleAt(pc uintptr) (Module, bool) {
	mods, err := Modules()
	if err != nil {
		return Module{}, false
	}
	for _, m := range mods {
		if m.Contains(pc) {
			return m, true
		}
	}
	return Module{}, false
}

// openModule reads the Go module at path, mapped with bias, whose code
// holds the live Go function entry pc.
func openModule(path string, bias, pc uintptr) (*Image, error) {
	im, err := Open(path)
	if err != nil {
		return nil, err
	}
	if err := im.fixTextStart(pc, bias); err != nil {
		return nil, err
	}
	im.rebase(bias)
	im.live = true
	return im, nil
}

// fixTextStart checks the text start the file gave against the live Go
// function entry pc: the runtime names the function there, and the
// table's entry offset of that name must lead to it. When the file alone
// gave a wrong guess (a stripped, externally linked binary), the Go
// functions are listed again from the right start.
func (im *Image) fixTextStart(pc, bias uintptr) error {
	rf := runtime.FuncForPC(pc)
	if rf == nil || rf.Entry() != pc {
		return fmt.Errorf("unwind: %s: %#x is not a Go function entry the runtime knows", im.Path, pc)
	}
	name := rf.Name()
	var offs []uint32
	for i := range im.pcln.nfunc {
		if im.pcln.printName(i) == name {
			if uint64(pc-bias) == im.pcln.textStart+uint64(im.pcln.entryOff(i)) {
				return nil // the file's guess holds
			}
			offs = append(offs, im.pcln.entryOff(i))
		}
	}
	if len(offs) == 0 {
		return fmt.Errorf("unwind: %s: no function %s to find the text start", im.Path, name)
	}
	im.pcln.textStart = uint64(pc-bias) - uint64(offs[0])
	if err := im.list(); err != nil {
		return fmt.Errorf("unwind: %s: %w", im.Path, err)
	}
	return nil
}

// loadBias reads where the kernel mapped the executable: AT_PHDR of the
// auxiliary vector is the live address of the program headers, which the
// file places at e_phoff inside a PT_LOAD segment. Unlike /proc/self/maps,
// it does not depend on the binary's path, which may hold spaces or have
// been deleted since the process started.
func loadBias(f *elf.File) (uintptr, error) {
	if f.Type != elf.ET_DYN {
		return 0, nil // not PIE: loaded where linked
	}
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 0, err
	}
	const atPHDR = 3
	var phdr uint64
	for i := 0; i+16 <= len(auxv); i += 16 {
		if binary.LittleEndian.Uint64(auxv[i:]) == atPHDR {
			phdr = binary.LittleEndian.Uint64(auxv[i+8:])
		}
	}
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	defer exe.Close()
	var hdr [64]byte // the ELF64 header; e_phoff is at 32
	if _, err := io.ReadFull(exe, hdr[:]); err != nil {
		return 0, err
	}
	phoff := binary.LittleEndian.Uint64(hdr[32:])
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off <= phoff && phoff < p.Off+p.Filesz && phdr != 0 {
			return uintptr(phdr - (p.Vaddr + phoff - p.Off)), nil
		}
	}
	return 0, errors.New("no AT_PHDR, or program headers outside every PT_LOAD segment")
}

func (im *Image) rebase(bias uintptr) {
	if bias == 0 {
		return
	}
	im.Bias = bias
	for i := range im.funcs {
		im.funcs[i].Entry += bias
		im.funcs[i].Next += bias
	}
	for i := range im.loads {
		im.loads[i].Start += bias
		im.loads[i].End += bias
	}
}

// load lists the Go functions from .gopclntab, which even stripped
// binaries keep, and adds the other functions of the symbol table (C code
// of cgo programs) when there is one.
func (im *Image) load() error {
	for _, p := range im.file.Progs {
		if p.Type == elf.PT_LOAD {
			im.loads = append(im.loads, Range{uintptr(p.Vaddr), uintptr(p.Vaddr + p.Memsz)})
		}
	}
	var err error
	im.syms, err = im.file.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return err
	}
	text := im.file.Section(".text")
	if text == nil {
		return errors.New("not a Go binary: no .text")
	}
	data, _, err := findPclntab(im.file, im.syms)
	if err != nil {
		return err
	}
	if im.pcln, err = parsePclntab(data, 0); err != nil {
		return err
	}
	im.pcln.textStart = im.textStart(text)
	return im.list()
}

// list builds the function list from the table and the symbols.
func (im *Image) list() error {
	var err error
	if im.funcs, err = im.pcln.funcs(); err != nil {
		return err
	}
	im.funcs = append(im.funcs, im.foreign(im.syms)...)
	slices.SortFunc(im.funcs, func(a, b Func) int {
		switch {
		case a.Entry < b.Entry:
			return -1
		case a.Entry > b.Entry:
			return 1
		}
		return 0
	})
	return nil
}

// textStart finds runtime.text, the base of the table's entry offsets: its
// symbol, or, in a stripped binary, the 32-byte aligned start (Go aligns
// every function so) from which the most functions begin with a Go
// prologue. An external linker may put C start-up code before it.
func (im *Image) textStart(text *elf.Section) uint64 {
	for _, s := range im.syms {
		if s.Name == "runtime.text" {
			return s.Value
		}
	}
	code, err := text.Data()
	if err != nil {
		return text.Addr
	}
	prologues := [][]byte{{0x49, 0x3b, 0x66, 0x10}, {0x4c, 0x8d, 0x64, 0x24}, {0x4c, 0x8d, 0xa4, 0x24}, {0x49, 0x89, 0xe4}}
	step := max(1, im.pcln.nfunc/512)
	best, bestScore := uint64(0), -1
	for skip := uint64(0); skip < 0x4000 && skip < uint64(len(code)); skip += 32 {
		score := 0
		for i := 0; i < im.pcln.nfunc; i += step {
			at := skip + uint64(im.pcln.entryOff(i))
			for _, p := range prologues {
				if at+uint64(len(p)) <= uint64(len(code)) && bytes.Equal(code[at:at+uint64(len(p))], p) {
					score++
					break
				}
			}
		}
		if score > bestScore {
			best, bestScore = skip, score
		}
	}
	return text.Addr + best
}

// execSection returns the executable section holding addr.
func (im *Image) execSection(addr uint64) *elf.Section {
	for _, s := range im.file.Sections {
		if s.Flags&elf.SHF_EXECINSTR != 0 && s.Addr <= addr && addr < s.Addr+s.Size {
			return s
		}
	}
	return nil
}

// foreign lists the function symbols the Go table does not cover.
func (im *Image) foreign(syms []elf.Symbol) []Func {
	covered := func(a uint64) bool {
		i := sort.Search(len(im.funcs), func(i int) bool { return uint64(im.funcs[i].Entry) > a }) - 1
		return i >= 0 && a < uint64(im.funcs[i].Next)
	}
	var all []elf.Symbol
	for _, s := range syms {
		if int(s.Section) < len(im.file.Sections) && s.Section != elf.SHN_UNDEF &&
			im.file.Sections[s.Section].Flags&elf.SHF_EXECINSTR != 0 {
			all = append(all, s)
		}
	}
	slices.SortFunc(all, func(a, b elf.Symbol) int {
		switch {
		case a.Value < b.Value:
			return -1
		case a.Value > b.Value:
			return 1
		}
		return 0
	})
	var out []Func
	for i, s := range all {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || covered(s.Value) ||
			len(out) > 0 && uint64(out[len(out)-1].Entry) == s.Value {
			continue
		}
		sec := im.execSection(s.Value)
		next := sec.Addr + sec.Size
		for _, t := range all[i+1:] {
			if t.Value > s.Value {
				next = min(next, t.Value)
				break
			}
		}
		out = append(out, Func{Name: s.Name, Entry: uintptr(s.Value), Size: int(min(s.Size, next-s.Value)), Next: uintptr(next)})
	}
	return out
}

// Funcs returns every function, sorted by entry.
func (im *Image) Funcs() []Func { return im.funcs }

// Loads returns the PT_LOAD segments.
func (im *Image) Loads() []Range { return im.loads }

// Lookup returns the function whose code or padding holds pc.
func (im *Image) Lookup(pc uintptr) (Func, bool) {
	i, found := slices.BinarySearchFunc(im.funcs, pc, func(f Func, pc uintptr) int {
		switch {
		case f.Entry < pc:
			return -1
		case f.Entry > pc:
			return 1
		}
		return 0
	})
	if !found {
		i--
	}
	if i < 0 || pc >= im.funcs[i].Next {
		return Func{}, false
	}
	return im.funcs[i], true
}

// Bytes returns a function's bytes from its entry to the next symbol, from
// the file.
func (im *Image) Bytes(f Func) ([]byte, error) {
	im.textOnce.Do(func() { im.text = map[*elf.Section][]byte{} })
	addr := uint64(f.Entry - im.Bias)
	sec := im.execSection(addr)
	if sec == nil {
		return nil, fmt.Errorf("%s: %#x is in no executable section", f.Name, f.Entry)
	}
	data, ok := im.text[sec]
	if !ok {
		var err error
		if data, err = sec.Data(); err != nil {
			return nil, err
		}
		im.text[sec] = data
	}
	off := addr - sec.Addr
	return data[off : off+uint64(f.Room())], nil
}

// ErrNoInlineProof: the binary cannot show that a function was not
// inlined. It has no DWARF for it (go test links with -s -w), and the
// compiler inlined code somewhere in it; .gopclntab records inlined code
// only where it left instructions of its own, so its silence proves
// nothing.
var ErrNoInlineProof = errors.New("cannot prove it was not inlined")

// Inlined reports whether the compiler inlined the named function into any
// caller, and the callers when the binary names them.
//
// With DWARF for the function, any abstract subprogram of that name
// (DW_AT_inline) or inlined subroutine of it means inlined: the compiler
// emits the abstract entry for every function it inlined, even where the
// inlined body left no instruction of its own (x*3 folded into the
// caller's lea) and so no DW_TAG_inlined_subroutine. Without DWARF, the
// binary proves "not inlined" only when nothing in it was inlined (built
// with -gcflags=all=-l); otherwise Inlined returns ErrNoInlineProof.
func (im *Image) Inlined(name string) (inlined bool, into []string, err error) {
	im.inlineOnce.Do(func() {
		im.InlineSource = "pclntab"
		if d, err := im.file.DWARF(); err == nil {
			im.InlineSource = "DWARF"
			im.inl, im.inlineErr = dwarfInlines(d)
			if im.inlineErr != nil {
				return
			}
		}
		im.anyInline, im.inlineErr = im.pcln.inlining()
	})
	if im.inlineErr != nil {
		return false, nil, fmt.Errorf("unwind: %w", im.inlineErr)
	}
	if im.inl.known[name] {
		return im.inl.abstract[name] || len(im.inl.into[name]) > 0, im.inl.into[name], nil
	}
	if im.anyInline {
		return false, nil, ErrNoInlineProof
	}
	return false, nil, nil
}

// dwarfInline is what DWARF says about inlining.
type dwarfInline struct {
	known    map[string]bool     // functions DWARF describes, concrete or abstract
	abstract map[string]bool     // functions with an abstract subprogram (DW_AT_inline)
	into     map[string][]string // inlined function -> functions it was inlined into
}

// dwarfInlines reads every subprogram and inlined subroutine.
func dwarfInlines(d *dwarf.Data) (dwarfInline, error) {
	out := dwarfInline{known: map[string]bool{}, abstract: map[string]bool{}, into: map[string][]string{}}
	abstract := map[dwarf.Offset]string{} // DW_AT_inline subprograms
	type site struct {
		origin    dwarf.Offset
		outer     string       // named outer function
		outerFrom dwarf.Offset // or the abstract origin naming it
	}
	var sites []site
	var outer string
	var outerFrom dwarf.Offset
	r := d.Reader()
	depth := 0
	for {
		e, err := r.Next()
		if err != nil {
			return out, fmt.Errorf("DWARF: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag == 0 {
			depth--
			continue
		}
		switch e.Tag {
		case dwarf.TagSubprogram:
			if depth == 1 {
				outer, outerFrom = "", 0
				if n, ok := e.Val(dwarf.AttrName).(string); ok {
					outer = n
					out.known[n] = true
					if e.Val(dwarf.AttrInline) != nil {
						abstract[e.Offset] = n
						out.abstract[n] = true
					}
				} else if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
					outerFrom = o
				}
			}
		case dwarf.TagInlinedSubroutine:
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				sites = append(sites, site{o, outer, outerFrom})
			}
		}
		if e.Children {
			// Only concrete subprograms hold inlined subroutines: skip
			// the members of types and the parameters of abstract ones.
			if depth == 1 && (e.Tag != dwarf.TagSubprogram || e.Val(dwarf.AttrInline) != nil) {
				r.SkipChildren()
				continue
			}
			depth++
		}
	}
	seen := map[[2]string]bool{}
	for _, s := range sites {
		in, outerName := abstract[s.origin], s.outer
		if outerName == "" {
			outerName = abstract[s.outerFrom]
		}
		if in == "" || seen[[2]string{in, outerName}] {
			continue
		}
		seen[[2]string{in, outerName}] = true
		out.into[in] = append(out.into[in], outerName)
	}
	return out, nil
}

// Name names the function holding pc: the runtime's name for Go code, else
// the demangled ELF symbol of this binary, else the address.
func Name(pc uintptr) string {
	if f := runtime.FuncForPC(pc); f != nil {
		return f.Name()
	}
	if im, err := Self(); err == nil {
		if f, ok := im.Lookup(pc); ok {
			return Demangle(f.Name)
		}
	}
	return fmt.Sprintf("%#x", pc)
}

// Autogenerated reports whether the Go function at pc is one the compiler
// generated with no source of its own: the wrappers of interface method
// expressions, of value methods called through pointers, of ABI changes.
func Autogenerated(pc uintptr) bool {
	f := runtime.FuncForPC(pc)
	if f == nil {
		return false
	}
	file, _ := f.FileLine(f.Entry())
	return file == "<autogenerated>"
}

// Demangle turns a C++ or Rust symbol into its source name and leaves any
// other name alone.
func Demangle(name string) string { return demangle.Filter(name) }
