package unwind

import (
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// inlineIndex is what DWARF says about inlining, kept small: the names of
// the functions DWARF describes (with a bit for an abstract subprogram,
// DW_AT_inline), and the inlined subroutines as pairs of DIE offsets,
// resolved to names only when a caller list is asked for. It is built in
// one pass over .debug_info, read one compile unit at a time into one
// reused buffer: nothing else of the DWARF is read or kept (the
// standard reader's entries cost a few hundred bytes each, and a 40,000
// function binary has half a million of them).
type inlineIndex struct {
	names    *nameSet          // with nameKnown | nameAbstract
	abstract map[uint32]uint32 // DIE offset of an abstract subprogram -> its name in names
	sites    []inlineSite      // in DIE order

	// byName groups the sites by their origin's name (its offset in
	// names), in DIE order: built on the first caller list asked for, so
	// that a scan asking for every function's callers reads the sites once.
	byNameOnce sync.Once
	byName     map[uint32][]int32
}

const (
	nameKnown    = 1 << iota // a subprogram of this name, concrete or abstract
	nameAbstract             // an abstract subprogram (DW_AT_inline) of this name
)

// inlineSite is one DW_TAG_inlined_subroutine: the offset of its abstract
// origin, and the subprogram holding it, by name (its offset in names) or
// by the offset of the abstract origin naming it.
type inlineSite struct {
	origin uint32
	outer  uint32
	named  bool
}

// debugSection returns the DWARF section .debug_<name>, or the older
// .zdebug_<name> form of it, which debug/elf also reads.
func debugSection(f *elf.File, name string) *elf.Section {
	if s := f.Section(".debug_" + name); s != nil {
		return s
	}
	return f.Section(".zdebug_" + name)
}

// errNoDWARFInfo: the binary has no .debug_info to index.
var errNoDWARFInfo = errors.New("no .debug_info")

// readInlineIndex indexes the inlining facts of f's DWARF. It reads the
// same entries dwarfInlines did with debug/dwarf's reader (kept as the
// tests' oracle): named top-level subprograms, and inlined subroutines
// inside concrete ones.
// sizeHint is about how many functions the binary has.
func readInlineIndex(f *elf.File, sizeHint int) (*inlineIndex, error) {
	info, abbrevSec := debugSection(f, "info"), debugSection(f, "abbrev")
	if info == nil || abbrevSec == nil || info.Type == elf.SHT_NOBITS {
		return nil, errNoDWARFInfo
	}
	if f.Type != elf.ET_EXEC {
		// debug/dwarf applies relocations to the DWARF of a relocatable or
		// shared object (a binary linked with --emit-relocs keeps them):
		// this index reads the bytes as they are, so it refuses to guess.
		for _, r := range f.Sections {
			if r.Type != elf.SHT_RELA && r.Type != elf.SHT_REL || int(r.Info) >= len(f.Sections) {
				continue
			}
			if t := f.Sections[r.Info].Name; strings.HasPrefix(t, ".debug_") || strings.HasPrefix(t, ".zdebug_") {
				return nil, fmt.Errorf("DWARF: %s relocates %s", r.Name, t)
			}
		}
	}
	abbrevData, err := abbrevSec.Data()
	if err != nil {
		return nil, fmt.Errorf("DWARF: .debug_abbrev: %w", err)
	}
	x := &inlineIndex{names: newNameSet(sizeHint + sizeHint/4), abstract: map[uint32]uint32{}}
	w := dieWalker{file: f, abbrevData: abbrevData, tables: map[uint32][]abbrev{}, ix: x}
	// Section.Open inflates a compressed section with compress/zlib, as
	// it streams: the unit buffer below is all the index holds.
	r := info.Open()
	var unit []byte
	var off uint32
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("DWARF: .debug_info at %#x: %w", off, err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n >= 0xfffffff0 {
			return nil, fmt.Errorf("DWARF: .debug_info at %#x: 64-bit DWARF or reserved length %#x", off, n)
		}
		if cap(unit) < int(n) {
			unit = make([]byte, n)
		}
		unit = unit[:n]
		if _, err := io.ReadFull(r, unit); err != nil {
			return nil, fmt.Errorf("DWARF: .debug_info unit at %#x: %w", off, err)
		}
		if err := w.unit(off, unit); err != nil {
			return nil, fmt.Errorf("DWARF: .debug_info unit at %#x: %w", off, err)
		}
		off += 4 + n
	}
	return x, nil
}

// inlined answers Inlined for a function DWARF describes: known is false
// when DWARF has no subprogram of that name.
func (x *inlineIndex) inlined(name string) (known, inlined bool, into []string) {
	off, ok := x.names.lookup(name)
	if !ok {
		return false, false, nil
	}
	if x.names.bits(off)&nameAbstract == 0 {
		// Every inlined subroutine's origin is an abstract subprogram.
		return true, false, nil
	}
	x.byNameOnce.Do(func() {
		x.byName = map[uint32][]int32{}
		for i, s := range x.sites {
			if o, ok := x.abstract[s.origin]; ok {
				x.byName[o] = append(x.byName[o], int32(i))
			}
		}
	})
	for _, i := range x.byName[off] {
		s := x.sites[i]
		var outer string
		if s.named {
			outer = x.names.name(s.outer)
		} else if o, ok := x.abstract[s.outer]; ok {
			outer = x.names.name(o)
		}
		if !slices.Contains(into, outer) {
			into = append(into, outer)
		}
	}
	return true, true, into
}

// abbrev is one abbreviation: a DIE's tag, whether it has children, and
// its attributes' forms.
type abbrev struct {
	tag      dwarf.Tag
	children bool
	attrs    []attrForm
}

type attrForm struct {
	attr     dwarf.Attr
	form     uint64
	implicit int64 // DW_FORM_implicit_const's value
}

// dieWalker walks the DIEs of compile units, skipping every attribute it
// does not need by its form.
type dieWalker struct {
	file       *elf.File
	abbrevData []byte
	// The string sections, read on first need: Go writes its names
	// inline, a C compiler's DWARF (cgo, external linking) in .debug_str.
	strs    map[string][]byte
	strBase uint64              // the unit's DW_AT_str_offsets_base
	tables  map[uint32][]abbrev // by .debug_abbrev offset; index = code
	ix      *inlineIndex

	// The top-level subprogram the walk is in: by its name's offset in
	// ix.names when named is set, else by outerFrom, the abstract origin
	// naming it.
	named     bool
	outer     uint32
	outerFrom uint32
}

// DWARF forms (DWARF 5 section 7.5.6), which debug/dwarf does not export.
const (
	formAddr          = 0x01
	formBlock2        = 0x03
	formBlock4        = 0x04
	formData2         = 0x05
	formData4         = 0x06
	formData8         = 0x07
	formString        = 0x08
	formBlock         = 0x09
	formBlock1        = 0x0a
	formData1         = 0x0b
	formFlag          = 0x0c
	formSdata         = 0x0d
	formStrp          = 0x0e
	formUdata         = 0x0f
	formRefAddr       = 0x10
	formRef1          = 0x11
	formRef2          = 0x12
	formRef4          = 0x13
	formRef8          = 0x14
	formRefUdata      = 0x15
	formIndirect      = 0x16
	formSecOffset     = 0x17
	formExprloc       = 0x18
	formFlagPresent   = 0x19
	formStrx          = 0x1a
	formAddrx         = 0x1b
	formRefSup4       = 0x1c
	formStrpSup       = 0x1d
	formData16        = 0x1e
	formLineStrp      = 0x1f
	formRefSig8       = 0x20
	formImplicitConst = 0x21
	formLoclistx      = 0x22
	formRnglistx      = 0x23
	formRefSup8       = 0x24
	formStrx1         = 0x25
	formStrx2         = 0x26
	formStrx3         = 0x27
	formStrx4         = 0x28
	formAddrx1        = 0x29
	formAddrx2        = 0x2a
	formAddrx3        = 0x2b
	formAddrx4        = 0x2c
	formGNUAddrIndex  = 0x1f01
	formGNUStrIndex   = 0x1f02
	formGNURefAlt     = 0x1f20
	formGNUStrpAlt    = 0x1f21
)

var errDIE = errors.New("malformed DIE")

// table returns the abbreviations at off in .debug_abbrev, parsed once.
func (w *dieWalker) table(off uint32) ([]abbrev, error) {
	if t, ok := w.tables[off]; ok {
		return t, nil
	}
	if int(off) >= len(w.abbrevData) {
		return nil, fmt.Errorf("abbreviation offset %#x outside .debug_abbrev", off)
	}
	b := w.abbrevData[off:]
	var t []abbrev
	for {
		code, ok := uleb(&b)
		if !ok {
			return nil, errDIE
		}
		if code == 0 {
			break
		}
		tag, ok1 := uleb(&b)
		if !ok1 || len(b) < 1 || code > 1<<16 {
			return nil, errDIE
		}
		a := abbrev{tag: dwarf.Tag(tag), children: b[0] != 0}
		b = b[1:]
		for {
			at, ok1 := uleb(&b)
			form, ok2 := uleb(&b)
			if !ok1 || !ok2 {
				return nil, errDIE
			}
			if at == 0 && form == 0 {
				break
			}
			af := attrForm{attr: dwarf.Attr(at), form: form}
			if form == formImplicitConst {
				v, ok := sleb(&b)
				if !ok {
					return nil, errDIE
				}
				af.implicit = v
			}
			a.attrs = append(a.attrs, af)
		}
		for uint64(len(t)) <= code {
			t = append(t, abbrev{})
		}
		t[code] = a
	}
	w.tables[off] = t
	return t, nil
}

// unit walks one unit; base is its offset in .debug_info, data follows its
// length field.
func (w *dieWalker) unit(base uint32, data []byte) error {
	if len(data) < 2 {
		return errDIE
	}
	version := binary.LittleEndian.Uint16(data)
	b := data[2:]
	var abbrevOff uint32
	var addrSize int
	switch {
	case version == 5:
		if len(b) < 6 {
			return errDIE
		}
		unitType, as := b[0], int(b[1])
		abbrevOff, addrSize = binary.LittleEndian.Uint32(b[2:]), as
		b = b[6:]
		switch unitType {
		case 0x01, 0x03: // DW_UT_compile, DW_UT_partial
		case 0x02, 0x06: // DW_UT_type, DW_UT_split_type: signature and type offset
			if len(b) < 12 {
				return errDIE
			}
			b = b[12:]
		case 0x04, 0x05: // DW_UT_skeleton, DW_UT_split_compile: dwo id
			if len(b) < 8 {
				return errDIE
			}
			b = b[8:]
		default:
			return fmt.Errorf("unit type %#x", unitType)
		}
	case version >= 2 && version <= 4:
		if len(b) < 5 {
			return errDIE
		}
		abbrevOff, addrSize = binary.LittleEndian.Uint32(b), int(b[4])
		b = b[5:]
	default:
		return fmt.Errorf("DWARF version %d", version)
	}
	tab, err := w.table(abbrevOff)
	if err != nil {
		return err
	}
	c := cursor{data: data, pos: len(data) - len(b), base: base + 4, addrSize: addrSize, version: version}
	depth := 0
	for c.pos < len(c.data) {
		off := c.base + uint32(c.pos)
		code, ok := c.uleb()
		if !ok {
			return errDIE
		}
		if code == 0 {
			depth--
			continue
		}
		if code >= uint64(len(tab)) || tab[code].attrs == nil && tab[code].tag == 0 {
			return fmt.Errorf("DIE at %#x: abbreviation %d undefined", off, code)
		}
		a := &tab[code]
		if depth == 0 && (a.tag == dwarf.TagCompileUnit || a.tag == dwarf.TagPartialUnit) {
			if err := w.unitDIE(&c, a); err != nil {
				return fmt.Errorf("DIE at %#x: %w", off, err)
			}
			if a.children {
				depth++
			}
			continue
		}
		want := depth == 1 && a.tag == dwarf.TagSubprogram || a.tag == dwarf.TagInlinedSubroutine
		var name []byte
		var hasName, inline bool
		var origin uint32
		var hasOrigin bool
		for _, af := range a.attrs {
			if !want {
				if err := c.skip(af.form); err != nil {
					return fmt.Errorf("DIE at %#x: %w", off, err)
				}
				continue
			}
			switch af.attr {
			case dwarf.AttrName:
				s, ok, err := w.str(&c, af.form)
				if err != nil {
					return fmt.Errorf("DIE at %#x: name: %w", off, err)
				}
				name, hasName = s, ok
			case dwarf.AttrInline:
				inline = true
				if err := c.skip(af.form); err != nil {
					return fmt.Errorf("DIE at %#x: %w", off, err)
				}
			case dwarf.AttrAbstractOrigin:
				o, ok, err := c.ref(af.form)
				if err != nil {
					return fmt.Errorf("DIE at %#x: abstract origin: %w", off, err)
				}
				origin, hasOrigin = o, ok
			default:
				if err := c.skip(af.form); err != nil {
					return fmt.Errorf("DIE at %#x: %w", off, err)
				}
			}
		}
		switch {
		case depth == 1 && a.tag == dwarf.TagSubprogram:
			w.named, w.outer, w.outerFrom = false, 0, 0
			if hasName {
				bits := uint8(nameKnown)
				if inline {
					bits |= nameAbstract
				}
				at := w.ix.names.add(name, bits)
				if inline {
					w.ix.abstract[off] = at
				}
				w.named, w.outer = len(name) > 0, at
			} else if hasOrigin {
				w.outerFrom = origin
			}
		case a.tag == dwarf.TagInlinedSubroutine && hasOrigin:
			s := inlineSite{origin: origin, outer: w.outerFrom}
			if w.named {
				s.outer, s.named = w.outer, true
			}
			w.ix.sites = append(w.ix.sites, s)
		}
		if a.children {
			// Only concrete subprograms hold inlined subroutines: skip
			// the members of types and the parameters of abstract ones.
			if depth == 1 && (a.tag != dwarf.TagSubprogram || inline) {
				if err := c.skipChildren(tab); err != nil {
					return fmt.Errorf("children of the DIE at %#x: %w", off, err)
				}
				continue
			}
			depth++
		}
	}
	return nil
}

// cursor reads the attribute values of one unit.
type cursor struct {
	data     []byte
	pos      int
	base     uint32 // offset in .debug_info of data[0]
	addrSize int
	version  uint16
}

func (c *cursor) uleb() (uint64, bool) {
	b := c.data[c.pos:]
	v, ok := uleb(&b)
	c.pos = len(c.data) - len(b)
	return v, ok
}

// uleb reads an unsigned LEB128 off the front of b. Unlike
// binary.Uvarint it reads past 64 bits (gcc writes 128-bit constants),
// keeping the low ones.
func uleb(b *[]byte) (uint64, bool) {
	var v uint64
	var shift uint
	for i, x := range *b {
		if shift < 64 {
			v |= uint64(x&0x7f) << shift
		}
		shift += 7
		if x&0x80 == 0 {
			*b = (*b)[i+1:]
			return v, true
		}
	}
	return 0, false
}

func sleb(b *[]byte) (int64, bool) {
	var v int64
	var shift uint
	for i, x := range *b {
		if shift < 64 {
			v |= int64(x&0x7f) << shift
		}
		shift += 7
		if x&0x80 == 0 {
			if shift < 64 && x&0x40 != 0 {
				v |= -1 << shift
			}
			*b = (*b)[i+1:]
			return v, true
		}
	}
	return 0, false
}

func (c *cursor) advance(n uint64) error {
	if n > uint64(len(c.data)-c.pos) {
		return errDIE
	}
	c.pos += int(n)
	return nil
}

func (c *cursor) fixed(n int) (uint64, error) {
	if n > len(c.data)-c.pos {
		return 0, errDIE
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(c.data[c.pos+i])
	}
	c.pos += n
	return v, nil
}

// skip passes over one attribute value of the form.
func (c *cursor) skip(form uint64) error {
	switch form {
	case formFlagPresent, formImplicitConst:
		return nil
	case formData1, formFlag, formRef1, formStrx1, formAddrx1:
		return c.advance(1)
	case formData2, formRef2, formStrx2, formAddrx2:
		return c.advance(2)
	case formStrx3, formAddrx3:
		return c.advance(3)
	case formData4, formRef4, formStrp, formLineStrp, formSecOffset, formRefSup4, formStrpSup,
		formStrx4, formAddrx4, formGNURefAlt, formGNUStrpAlt:
		return c.advance(4)
	case formData8, formRef8, formRefSig8, formRefSup8:
		return c.advance(8)
	case formData16:
		return c.advance(16)
	case formAddr:
		return c.advance(uint64(c.addrSize))
	case formRefAddr:
		if c.version <= 2 {
			return c.advance(uint64(c.addrSize))
		}
		return c.advance(4)
	case formUdata, formSdata, formRefUdata, formStrx, formAddrx, formLoclistx, formRnglistx,
		formGNUAddrIndex, formGNUStrIndex:
		if _, ok := c.uleb(); !ok {
			return errDIE
		}
		return nil
	case formString:
		for i, x := range c.data[c.pos:] {
			if x == 0 {
				c.pos += i + 1
				return nil
			}
		}
		return errDIE
	case formBlock1:
		n, err := c.fixed(1)
		if err != nil {
			return err
		}
		return c.advance(n)
	case formBlock2:
		n, err := c.fixed(2)
		if err != nil {
			return err
		}
		return c.advance(n)
	case formBlock4:
		n, err := c.fixed(4)
		if err != nil {
			return err
		}
		return c.advance(n)
	case formBlock, formExprloc:
		n, ok := c.uleb()
		if !ok {
			return errDIE
		}
		return c.advance(n)
	case formIndirect:
		f, ok := c.uleb()
		if !ok || f == formIndirect {
			return errDIE
		}
		return c.skip(f)
	}
	return fmt.Errorf("unknown attribute form %#x", form)
}

// unitDIE reads the unit's own DIE: its string offsets base.
func (w *dieWalker) unitDIE(c *cursor, a *abbrev) error {
	w.strBase = 0
	for _, af := range a.attrs {
		if af.attr == dwarf.AttrStrOffsetsBase && af.form == formSecOffset {
			v, err := c.fixed(4)
			if err != nil {
				return err
			}
			w.strBase = v
			continue
		}
		if err := c.skip(af.form); err != nil {
			return err
		}
	}
	return nil
}

// section returns a string section's bytes, read once; nil when absent.
func (w *dieWalker) section(name string) ([]byte, error) {
	if b, ok := w.strs[name]; ok {
		return b, nil
	}
	var b []byte
	if s := debugSection(w.file, strings.TrimPrefix(name, ".debug_")); s != nil && s.Type != elf.SHT_NOBITS {
		var err error
		if b, err = s.Data(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if w.strs == nil {
		w.strs = map[string][]byte{}
	}
	w.strs[name] = b
	return b, nil
}

// str reads a name, as debug/dwarf's reader does: inline, or from a
// string section. A name the reader would not give as a string (in a
// supplementary file) is none.
func (w *dieWalker) str(c *cursor, form uint64) ([]byte, bool, error) {
	var sec string
	var off uint64
	switch form {
	case formString:
		for i, x := range c.data[c.pos:] {
			if x == 0 {
				s := c.data[c.pos : c.pos+i]
				c.pos += i + 1
				return s, true, nil
			}
		}
		return nil, false, errDIE
	case formStrp, formLineStrp:
		v, err := c.fixed(4)
		if err != nil {
			return nil, false, err
		}
		sec, off = ".debug_str", v
		if form == formLineStrp {
			sec = ".debug_line_str"
		}
	case formStrx, formStrx1, formStrx2, formStrx3, formStrx4:
		var idx uint64
		var err error
		switch form {
		case formStrx:
			var ok bool
			if idx, ok = c.uleb(); !ok {
				err = errDIE
			}
		case formStrx1:
			idx, err = c.fixed(1)
		case formStrx2:
			idx, err = c.fixed(2)
		case formStrx3:
			idx, err = c.fixed(3)
		case formStrx4:
			idx, err = c.fixed(4)
		}
		if err != nil {
			return nil, false, err
		}
		offs, err := w.section(".debug_str_offsets")
		if err != nil {
			return nil, false, err
		}
		at := w.strBase + 4*idx
		if at+4 > uint64(len(offs)) {
			return nil, false, fmt.Errorf("string index %d outside .debug_str_offsets", idx)
		}
		sec, off = ".debug_str", uint64(binary.LittleEndian.Uint32(offs[at:]))
	default:
		return nil, false, c.skip(form)
	}
	data, err := w.section(sec)
	if err != nil {
		return nil, false, err
	}
	if off >= uint64(len(data)) {
		return nil, false, fmt.Errorf("string offset %#x outside %s", off, sec)
	}
	b := data[off:]
	for i, x := range b {
		if x == 0 {
			return b[:i], true, nil
		}
	}
	return nil, false, fmt.Errorf("unterminated string in %s", sec)
}

// ref reads a reference as an offset in .debug_info.
func (c *cursor) ref(form uint64) (uint32, bool, error) {
	var v uint64
	var err error
	switch form {
	case formRefAddr:
		n := 4
		if c.version <= 2 {
			n = c.addrSize
		}
		v, err = c.fixed(n)
		return uint32(v), err == nil, err
	case formRef1:
		v, err = c.fixed(1)
	case formRef2:
		v, err = c.fixed(2)
	case formRef4:
		v, err = c.fixed(4)
	case formRef8:
		v, err = c.fixed(8)
	case formRefUdata:
		var ok bool
		if v, ok = c.uleb(); !ok {
			err = errDIE
		}
	default:
		// A reference into another section or file (supplementary,
		// type signature): not an offset in this .debug_info.
		return 0, false, c.skip(form)
	}
	// Unit-relative: from the start of the unit, its length field included.
	return c.base - 4 + uint32(v), err == nil, err
}

// skipChildren passes over the children of the DIE just read.
func (c *cursor) skipChildren(tab []abbrev) error {
	depth := 1
	for depth > 0 {
		code, ok := c.uleb()
		if !ok {
			return errDIE
		}
		if code == 0 {
			depth--
			continue
		}
		if code >= uint64(len(tab)) {
			return fmt.Errorf("abbreviation %d undefined", code)
		}
		a := &tab[code]
		for _, af := range a.attrs {
			if err := c.skip(af.form); err != nil {
				return err
			}
		}
		if a.children {
			depth++
		}
	}
	return nil
}
