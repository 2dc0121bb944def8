package unwind

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrNoSymbols: the object holding an address keeps no symbol for it (no
// .symtab, and .dynsym lists exported functions only), so its extent is
// unknown.
var ErrNoSymbols = errors.New("unwind: no symbol table covers the address")

// ErrNoModule: no file-backed mapping of this process holds the address,
// or no loaded object defines the name.
var ErrNoModule = errors.New("unwind: not in any loaded object")

// A Module is one ELF object mapped into this process: the executable or
// a shared object, as /proc/self/maps lists them.
type Module struct {
	Path string  // the file
	Bias uintptr // added to the file's addresses
	Main bool    // the executable
	// Maps are the object's mappings.
	Maps []Range

	syms *modSyms
}

// modSyms are the function symbols of one object, at file addresses.
type modSyms struct {
	funcs     []Func // sorted by entry; Next bounded by the next symbol or the section end
	symtab    bool   // a full .symtab (not only .dynsym)
	demangled map[string]uintptr
	err       error
}

var symCache struct {
	sync.Mutex
	byKey map[string]*modSyms
}

// Modules lists the ELF objects mapped now, in the order of their first
// mapping. The executable is read through /proc/self/exe, so a deleted or
// replaced binary still reads right.
func Modules() ([]Module, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("unwind: %w", err)
	}
	exeIno, exeDev := exeID()
	type first struct {
		start, off uintptr
	}
	var mods []Module
	firsts := map[string]first{}
	index := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[5], "/") {
			continue
		}
		lohi := strings.SplitN(f[0], "-", 2)
		lo, err1 := strconv.ParseUint(lohi[0], 16, 64)
		hi, err2 := strconv.ParseUint(lohi[len(lohi)-1], 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		ino, err4 := strconv.ParseUint(f[4], 10, 64)
		var major, minor uint64
		_, err5 := fmt.Sscanf(f[3], "%x:%x", &major, &minor)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return nil, fmt.Errorf("unwind: /proc/self/maps: %q: %w", sc.Text(), err)
		}
		path := strings.Join(f[5:], " ")
		main := ino == exeIno && exeIno != 0 && mkdev(major, minor) == exeDev
		if main {
			path = "/proc/self/exe"
		}
		i, ok := index[path]
		if !ok {
			i = len(mods)
			index[path] = i
			mods = append(mods, Module{Path: path, Main: main})
			firsts[path] = first{uintptr(lo), uintptr(off)}
		}
		if fs := firsts[path]; uintptr(off) < fs.off {
			firsts[path] = first{uintptr(lo), uintptr(off)}
		}
		mods[i].Maps = append(mods[i].Maps, Range{uintptr(lo), uintptr(hi)})
	}
	out := mods[:0]
	for _, m := range mods {
		fs := firsts[m.Path]
		key := biasKey{m.Path, fs.start, fs.off}
		b, ok := biasCache.Load(key)
		if !ok {
			b = biasOf(m.Path, fs.start, fs.off)
			biasCache.Store(key, b)
		}
		if bias := b.(int64); bias >= 0 {
			m.Bias = uintptr(bias)
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// biasKey is one object's first mapping: the same file mapped at the same
// place has the same bias, so the ELF headers are read once.
type biasKey struct {
	path       string
	start, off uintptr
}

var biasCache sync.Map // biasKey -> int64, -1 when not an ELF object

// biasOf is the load bias of the object at path whose mapping of file
// offset off starts at start: the PT_LOAD segment holding off says where
// the file wants it. -1 for a file that is not ELF (a mapped data file).
func biasOf(path string, start, off uintptr) int64 {
	f, err := elf.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && uint64(off) >= p.Off&^0xfff && uint64(off) < p.Off+p.Filesz {
			return int64(start - uintptr(p.Vaddr) + uintptr(p.Off) - off)
		}
	}
	return -1
}

// Contains reports whether one of the module's mappings holds pc.
func (m *Module) Contains(pc uintptr) bool {
	for _, r := range m.Maps {
		if r.Start <= pc && pc < r.End {
			return true
		}
	}
	return false
}

// symbols reads the module's function symbols once per file and bias.
func (m *Module) symbols() *modSyms {
	if m.syms != nil {
		return m.syms
	}
	symCache.Lock()
	defer symCache.Unlock()
	if symCache.byKey == nil {
		symCache.byKey = map[string]*modSyms{}
	}
	key := fmt.Sprintf("%s@%#x", m.Path, m.Bias)
	if s := symCache.byKey[key]; s != nil {
		m.syms = s
		return s
	}
	s := readSyms(m.Path)
	symCache.byKey[key] = s
	m.syms = s
	return s
}

func readSyms(path string) *modSyms {
	f, err := elf.Open(path)
	if err != nil {
		return &modSyms{err: err}
	}
	defer f.Close()
	s := &modSyms{}
	all, err := f.Symbols()
	s.symtab = err == nil && len(all) > 0
	dyn, _ := f.DynamicSymbols()
	all = append(all, dyn...)
	exec := func(sym elf.Symbol) *elf.Section {
		if sym.Section == elf.SHN_UNDEF || int(sym.Section) >= len(f.Sections) {
			return nil
		}
		if sec := f.Sections[sym.Section]; sec.Flags&elf.SHF_EXECINSTR != 0 {
			return sec
		}
		return nil
	}
	var code []elf.Symbol
	for _, sym := range all {
		if exec(sym) != nil && sym.Value != 0 {
			code = append(code, sym)
		}
	}
	slices.SortFunc(code, func(a, b elf.Symbol) int {
		switch {
		case a.Value != b.Value:
			if a.Value < b.Value {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	s.demangled = map[string]uintptr{}
	for i, sym := range code {
		if elf.ST_TYPE(sym.Info) != elf.STT_FUNC || sym.Size == 0 {
			continue
		}
		if _, dup := s.demangled[sym.Name]; !dup {
			s.demangled[sym.Name] = uintptr(sym.Value)
		}
		if d := Demangle(sym.Name); d != sym.Name {
			if _, dup := s.demangled[d]; !dup {
				s.demangled[d] = uintptr(sym.Value)
			}
		}
		if n := len(s.funcs); n > 0 && s.funcs[n-1].Entry == uintptr(sym.Value) {
			continue // an alias
		}
		sec := exec(sym)
		next := sec.Addr + sec.Size
		for _, t := range code[i+1:] {
			if t.Value > sym.Value {
				next = min(next, t.Value)
				break
			}
		}
		s.funcs = append(s.funcs, Func{Name: sym.Name, Entry: uintptr(sym.Value), Size: int(min(sym.Size, next-sym.Value)), Next: uintptr(next)})
	}
	return s
}

// LookupC finds the C function whose entry is pc, at its load address,
// and the module holding it. It fails with ErrNoModule outside every
// object, with ErrNoSymbols when the object keeps no symbol for pc, and
// otherwise with an error naming the function pc lies in.
func LookupC(pc uintptr) (Func, Module, error) {
	mods, err := Modules()
	if err != nil {
		return Func{}, Module{}, err
	}
	for _, m := range mods {
		if !m.Contains(pc) {
			continue
		}
		s := m.symbols()
		if s.err != nil {
			return Func{}, m, fmt.Errorf("unwind: %s: %w", m.Path, s.err)
		}
		at := pc - m.Bias
		i, found := slices.BinarySearchFunc(s.funcs, at, func(f Func, a uintptr) int {
			switch {
			case f.Entry < a:
				return -1
			case f.Entry > a:
				return 1
			}
			return 0
		})
		if found {
			f := s.funcs[i]
			f.Entry += m.Bias
			f.Next += m.Bias
			return f, m, nil
		}
		if !s.symtab {
			return Func{}, m, fmt.Errorf("%w: %s has no .symtab and exports no function at %#x", ErrNoSymbols, m.Path, pc)
		}
		if i > 0 && at < s.funcs[i-1].Next {
			return Func{}, m, fmt.Errorf("%#x is inside %s (%s+%#x), not at its entry", pc, m.Path, Demangle(s.funcs[i-1].Name), at-s.funcs[i-1].Entry)
		}
		return Func{}, m, fmt.Errorf("%#x is in %s but in no function symbol", pc, m.Path)
	}
	return Func{}, Module{}, fmt.Errorf("%w: %#x", ErrNoModule, pc)
}

// LookupSymbol returns the load address of the function named name: a C
// symbol, or a C++ function by its demangled name
// ("shop::Price::get(int) const"). It searches the executable and every
// loaded shared object, in load order, in .symtab and .dynsym.
func LookupSymbol(name string) (uintptr, Module, error) {
	mods, err := Modules()
	if err != nil {
		return 0, Module{}, err
	}
	var bare []string
	for _, m := range mods {
		s := m.symbols()
		if s.err != nil {
			continue
		}
		if a, ok := s.demangled[name]; ok {
			return a + m.Bias, m, nil
		}
		if !s.symtab {
			bare = append(bare, m.Path)
		}
	}
	if len(bare) > 0 {
		return 0, Module{}, fmt.Errorf("%w: no function %q (only the exported functions of %s were searched: no .symtab)", ErrNoModule, name, strings.Join(bare, ", "))
	}
	return 0, Module{}, fmt.Errorf("%w: no function %q", ErrNoModule, name)
}

// Executable reports whether pc lies in an executable mapping of this
// process: an object's text, or anonymous code such as a trampoline.
func Executable(pc uintptr) bool {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || len(f[1]) < 3 || f[1][2] != 'x' {
			continue
		}
		lohi := strings.SplitN(f[0], "-", 2)
		lo, err1 := strconv.ParseUint(lohi[0], 16, 64)
		hi, err2 := strconv.ParseUint(lohi[len(lohi)-1], 16, 64)
		if err1 == nil && err2 == nil && uint64(pc) >= lo && uint64(pc) < hi {
			return true
		}
	}
	return false
}

// cRuntime are the prefixes of the C functions that the C start-up code,
// the dynamic loader and the Go runtime's cgo glue are made of.
var cRuntime = []string{"_cgo_", "x_cgo_", "crosscall", "_start", "_init", "_fini", "__libc_", "_dl_"}

// CRuntime reports whether the C symbol name belongs to the C start-up
// code or the Go runtime's cgo glue: patching it would redirect the
// runtime's own calls.
func CRuntime(name string) bool {
	for _, p := range cRuntime {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
