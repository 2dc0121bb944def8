package unwind

import (
	"bytes"
	"cmp"
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
	"sync/atomic"
	"time"
	"unsafe"

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
	pcln  *pclntab
	loads []Range

	// The symbol table and the list of every function are read on first
	// need only: a Set of a Go function needs neither (Lookup searches the
	// function table itself), and in a large binary they cost megabytes.
	symsOnce   sync.Once
	syms       []elf.Symbol
	symsErr    error
	funcsMu    sync.Mutex
	funcsBuilt bool
	funcs      []Func // Go and foreign, sorted by entry, at load addresses
	funcsErr   error

	// InlineSource says where Inlined looks, once it has run: "DWARF"
	// (then .gopclntab for functions DWARF does not describe) or
	// "pclntab".
	InlineSource string

	namesOnce sync.Once
	names     []string // every function's name, sorted, for FuncNames

	rootOnce sync.Once
	root     string // GOROOT/src of the image's runtime, for StdPackage

	inlineOnce sync.Once
	inlineRead atomic.Bool  // inlineOnce has run
	inl        *inlineIndex // nil without DWARF
	inlineErr  error

	// anyInline: some function of .gopclntab has inlined code. Read only
	// for a function DWARF does not describe: the scan touches every
	// function's header, megabytes of the table's pages.
	anyOnce   sync.Once
	anyInline bool
	anyErr    error

	buildOnce sync.Once
	settings  map[string]string // BuildSetting's, nil when unreadable

	builtOnce sync.Once
	built     time.Time // the file's modification time, for NoInline
	srcMu     sync.Mutex
	src       sourceText // the last source file NoInline read
	// srcBytes and srcLines are how much source NoInline has read, so
	// that a first read is sized to the line asked about.
	srcBytes, srcLines int64

	treesOnce sync.Once
	trees     *treeIndex // InlinedCopies'
	treesErr  error
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
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("unwind: %w", err)
	}
	im := &Image{Path: "/proc/self/exe", file: f, live: true}
	bias, err := loadBias(f)
	if err == nil && im.holdsAt(live, bias) {
		if err := im.loadSelf(bias); err != nil {
			f.Close()
			return nil, fmt.Errorf("unwind: %s: %w", im.Path, err)
		}
		return im, nil
	}
	f.Close()
	if m, ok := moduleAt(live); ok && !m.Main {
		// A c-shared library loaded by a C (or other) host: the Go
		// runtime, and this code, live in the library, not in the
		// executable.
		return openModule(m.Path, m.Bias, live)
	}
	if err == nil {
		err = fmt.Errorf("this code (%#x) is in no load segment of the executable, nor in another object", live)
	}
	return nil, fmt.Errorf("unwind: %w", err)
}

// holdsAt reports whether one of the file's load segments, mapped with
// bias, holds pc: whether this code is the executable's.
func (im *Image) holdsAt(pc, bias uintptr) bool {
	for _, p := range im.file.Progs {
		if p.Type == elf.PT_LOAD && uintptr(p.Vaddr)+bias <= pc && pc < uintptr(p.Vaddr+p.Memsz)+bias {
			return true
		}
	}
	return false
}

// loadSelf reads the running binary's function table where the runtime
// reads it, in memory (no copy: its pages are the file's, and mostly
// resident already), and finds the text start from anchor's live address
// rather than from the symbol table.
func (im *Image) loadSelf(bias uintptr) error {
	im.Bias = bias
	for _, p := range im.file.Progs {
		if p.Type == elf.PT_LOAD {
			im.loads = append(im.loads, Range{uintptr(p.Vaddr) + bias, uintptr(p.Vaddr+p.Memsz) + bias})
		}
	}
	if im.file.Section(".text") == nil {
		return errors.New("not a Go binary: no .text")
	}
	var err error
	data, ok := im.livePclntab()
	if !ok {
		syms, err := im.elfSymbols()
		if err != nil {
			return err
		}
		if data, _, err = findPclntab(im.file, syms); err != nil {
			return err
		}
	}
	if im.pcln, err = parsePclntab(data, 0); err != nil {
		return err
	}
	live := reflect.ValueOf(anchor).Pointer()
	name := runtime.FuncForPC(live).Name()
	// The text section's start is runtime.text in an internally linked
	// binary: try it with one lookup before searching the table by name.
	im.pcln.textStart = im.file.Section(".text").Addr
	if f, ok := im.goLookup(live); ok && f.Entry == live && f.Name == name {
		return nil
	}
	i := im.pcln.index(name, -1)
	if i < 0 {
		return fmt.Errorf("no function %s to find the text start", name)
	}
	im.pcln.textStart = uint64(live-bias) - uint64(im.pcln.entryOff(i))
	return nil
}

// livePclntab returns the function table section's bytes in this
// process's memory, when a read-only load segment maps all of it from the
// file: the runtime reads the same bytes.
func (im *Image) livePclntab() ([]byte, bool) {
	for _, name := range pclntabSections {
		s := im.file.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_COMPRESSED != 0 || s.Size == 0 {
			continue
		}
		for _, p := range im.file.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0 && p.Vaddr <= s.Addr && s.Addr+s.Size <= p.Vaddr+p.Filesz &&
				s.Offset-p.Off == s.Addr-p.Vaddr {
				// The address is mapped from the file for the life of the process.
				at := unsafe.Add(unsafe.Pointer(nil), uintptr(s.Addr)+im.Bias)
				return unsafe.Slice((*byte)(at), s.Size), true
			}
		}
	}
	return nil, false
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

// load lists the Go functions from .gopclntab, which even stripped
// binaries keep, and adds the other functions of the symbol table (C code
// of cgo programs) when there is one.
func (im *Image) load() error {
	for _, p := range im.file.Progs {
		if p.Type == elf.PT_LOAD {
			im.loads = append(im.loads, Range{uintptr(p.Vaddr), uintptr(p.Vaddr + p.Memsz)})
		}
	}
	syms, err := im.elfSymbols()
	if err != nil {
		return err
	}
	text := im.file.Section(".text")
	if text == nil {
		return errors.New("not a Go binary: no .text")
	}
	data, _, err := findPclntab(im.file, syms)
	if err != nil {
		return err
	}
	if im.pcln, err = parsePclntab(data, 0); err != nil {
		return err
	}
	im.pcln.textStart = im.textStart(text, syms)
	_, err = im.allFuncs()
	return err
}

// elfSymbols returns the ELF symbol table, read once; none for a stripped
// binary.
func (im *Image) elfSymbols() ([]elf.Symbol, error) {
	im.symsOnce.Do(func() {
		im.syms, im.symsErr = im.file.Symbols()
		if errors.Is(im.symsErr, elf.ErrNoSymbols) {
			im.symsErr = nil
		}
	})
	return im.syms, im.symsErr
}

// allFuncs builds the list of every function once: the Go table's and the
// symbol table's others, at load addresses.
func (im *Image) allFuncs() ([]Func, error) {
	im.funcsMu.Lock()
	defer im.funcsMu.Unlock()
	if !im.funcsBuilt {
		im.funcs, im.funcsErr = im.buildFuncs()
		im.funcsBuilt = true
	}
	return im.funcs, im.funcsErr
}

// list builds the list of every function again, after the text start
// changed.
func (im *Image) list() error {
	im.funcsMu.Lock()
	defer im.funcsMu.Unlock()
	im.funcs, im.funcsErr = im.buildFuncs()
	im.funcsBuilt = true
	return im.funcsErr
}

func (im *Image) buildFuncs() ([]Func, error) {
	syms, err := im.elfSymbols()
	if err != nil {
		return nil, err
	}
	funcs, err := im.pcln.funcs()
	if err != nil {
		return nil, err
	}
	funcs = append(funcs, im.foreign(funcs, syms)...)
	slices.SortFunc(funcs, func(a, b Func) int {
		switch {
		case a.Entry < b.Entry:
			return -1
		case a.Entry > b.Entry:
			return 1
		}
		return 0
	})
	for i := range funcs {
		funcs[i].Entry += im.Bias
		funcs[i].Next += im.Bias
	}
	return funcs, nil
}

// rebase moves the image to where it is loaded: bias is added to every
// file address (Bias was zero).
func (im *Image) rebase(bias uintptr) {
	if bias == 0 {
		return
	}
	im.Bias = bias
	im.funcsMu.Lock()
	for i := range im.funcs {
		im.funcs[i].Entry += bias
		im.funcs[i].Next += bias
	}
	im.funcsMu.Unlock()
	for i := range im.loads {
		im.loads[i].Start += bias
		im.loads[i].End += bias
	}
}

// textStart finds runtime.text, the base of the table's entry offsets: its
// symbol, or, in a stripped binary, the 32-byte aligned start (Go aligns
// every function so) from which the most functions begin with a Go
// prologue. An external linker may put C start-up code before it.
func (im *Image) textStart(text *elf.Section, syms []elf.Symbol) uint64 {
	for _, s := range syms {
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

// foreign lists the function symbols the Go table (goFuncs, at file
// addresses) does not cover.
func (im *Image) foreign(goFuncs []Func, syms []elf.Symbol) []Func {
	covered := func(a uint64) bool {
		i := sort.Search(len(goFuncs), func(i int) bool { return uint64(goFuncs[i].Entry) > a }) - 1
		return i >= 0 && a < uint64(goFuncs[i].Next)
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

// Live reports whether the image is code of this process, loaded where its
// addresses say (Self, ImageAt), rather than a file read for study (Open,
// OpenAt): only then does the runtime answer for its code.
func (im *Image) Live() bool { return im.live }

// Funcs returns every function, sorted by entry. The first call builds the
// list; nil if the table cannot be read.
func (im *Image) Funcs() []Func {
	funcs, _ := im.allFuncs()
	return funcs
}

// Loads returns the PT_LOAD segments.
func (im *Image) Loads() []Range { return im.loads }

// Lookup returns the function whose code or padding holds pc. A Go
// function is found in the function table itself; other code in the list
// of every function, which this builds on first need.
func (im *Image) Lookup(pc uintptr) (Func, bool) {
	if f, ok := im.goLookup(pc); ok {
		return f, true
	}
	funcs, _ := im.allFuncs()
	i, found := slices.BinarySearchFunc(funcs, pc, func(f Func, pc uintptr) int {
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
	if i < 0 || pc >= funcs[i].Next {
		return Func{}, false
	}
	return funcs[i], true
}

// goLookup finds the Go function whose code or padding holds pc by a
// binary search of the function table.
func (im *Image) goLookup(pc uintptr) (f Func, ok bool) {
	i := im.goIndex(pc)
	if i < 0 {
		return Func{}, false
	}
	defer func() {
		if recover() != nil {
			f, ok = Func{}, false // a truncated table: the self-check says so
		}
	}()
	f = im.pcln.function(i)
	f.Entry += im.Bias
	f.Next += im.Bias
	return f, true
}

// goIndex returns the index in the function table of the Go function
// whose code or padding holds pc, or -1.
func (im *Image) goIndex(pc uintptr) (i int) {
	t := im.pcln
	if t == nil || pc < im.Bias {
		return -1
	}
	defer func() {
		if recover() != nil {
			i = -1
		}
	}()
	a := uint64(pc - im.Bias)
	if t.nfunc == 0 || a < t.entry(0) || a >= t.entry(t.nfunc) {
		return -1
	}
	return sort.Search(t.nfunc, func(i int) bool { return t.entry(i) > a }) - 1
}

// Bytes returns a function's bytes from its entry to the next symbol, from
// the file (those bytes only).
func (im *Image) Bytes(f Func) ([]byte, error) {
	addr := uint64(f.Entry - im.Bias)
	sec := im.execSection(addr)
	if sec == nil || addr+uint64(f.Room()) > sec.Addr+sec.Size {
		return nil, fmt.Errorf("%s: %#x is in no executable section", f.Name, f.Entry)
	}
	data := make([]byte, f.Room())
	if _, err := sec.ReadAt(data, int64(addr-sec.Addr)); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return data, nil
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
// (DW_AT_inline) or inlined subroutine of it means inlined. The function's
// own concrete entry points at the abstract one whenever its own package
// inlined it, even where the inlined body left no instruction of its own
// (x*3 folded into the caller's lea). A copy inlined into another package
// that left neither instructions nor variables leaves no trace at all:
// the abstract entry it made is referenced by nothing, and the linker
// drops it. So "not inlined" from DWARF covers the function's own package
// and every copy that left code; registry decides what that proves for a
// function other packages can call. Without DWARF, the
// binary proves "not inlined" only when nothing in it was inlined (built
// with -gcflags=all=-l); otherwise Inlined returns ErrNoInlineProof.
func (im *Image) Inlined(name string) (inlined bool, into []string, err error) {
	im.inlineOnce.Do(func() {
		defer im.inlineRead.Store(true)
		im.InlineSource = "pclntab"
		x, err := readInlineIndex(im.file, im.pcln.nfunc)
		switch {
		case errors.Is(err, errNoDWARFInfo):
		case err != nil:
			// DWARF that cannot be read proves nothing either way.
			im.InlineSource, im.inlineErr = "DWARF", err
			return
		default:
			im.InlineSource, im.inl = "DWARF", x
		}
	})
	if im.inlineErr != nil {
		return false, nil, fmt.Errorf("unwind: %w", im.inlineErr)
	}
	if im.inl != nil {
		if known, inlined, into := im.inl.inlined(name); known {
			return inlined, into, nil
		}
	}
	if some, err := im.InlinesAnything(); err != nil || some {
		return false, nil, cmp.Or(err, ErrNoInlineProof)
	}
	return false, nil, nil
}

// InlinesAnything reports whether the compiler inlined code into any
// function of the image: whether one has inline-tree pcdata in
// .gopclntab. A binary built with -gcflags=all=-l has none, the runtime
// included.
func (im *Image) InlinesAnything() (bool, error) {
	im.anyOnce.Do(func() { im.anyInline, im.anyErr = im.pcln.inlining() })
	if im.anyErr != nil {
		return false, fmt.Errorf("unwind: %w", im.anyErr)
	}
	return im.anyInline, nil
}

// InlineIndexed reports whether Inlined has read the image's DWARF (or
// found none) already, so that another question costs a lookup.
func (im *Image) InlineIndexed() bool { return im.inlineRead.Load() }

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
