package unwind

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// dwLangGo is DW_LANG_Go: the Go compile units of a cgo binary, skipped
// when looking for inlined C.
const dwLangGo = 0x16

// attrMIPSLinkageName is DW_AT_MIPS_linkage_name, which older compilers
// use instead of DW_AT_linkage_name.
const attrMIPSLinkageName dwarf.Attr = 0x2007

// cInlineMap maps every C or C++ function the compiler inlined somewhere
// to the functions holding the inlined copies, from DWARF: its
// DW_TAG_inlined_subroutine entries. Keys are symbol names: the linkage
// (mangled) name when there is one, else the name, which is C's symbol.
func cInlineMap(d *dwarf.Data) (map[string][]string, error) {
	type die struct {
		name, linkage string
		spec, origin  dwarf.Offset
	}
	dies := map[dwarf.Offset]die{}
	type site struct{ origin, outer dwarf.Offset }
	var sites []site
	type open struct {
		depth int
		off   dwarf.Offset
	}
	var stack []open // the concrete functions the reader is inside
	r := d.Reader()
	depth := 0
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("unwind: DWARF: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag == 0 {
			depth--
			continue
		}
		for len(stack) > 0 && stack[len(stack)-1].depth >= depth {
			stack = stack[:len(stack)-1]
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			if lang, _ := e.Val(dwarf.AttrLanguage).(int64); lang == dwLangGo {
				r.SkipChildren()
				continue
			}
		case dwarf.TagSubprogram:
			var x die
			x.name, _ = e.Val(dwarf.AttrName).(string)
			x.linkage, _ = e.Val(dwarf.AttrLinkageName).(string)
			if x.linkage == "" {
				x.linkage, _ = e.Val(attrMIPSLinkageName).(string)
			}
			x.spec, _ = e.Val(dwarf.AttrSpecification).(dwarf.Offset)
			x.origin, _ = e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
			dies[e.Offset] = x
			if e.Val(dwarf.AttrLowpc) != nil || e.Val(dwarf.AttrRanges) != nil {
				stack = append(stack, open{depth, e.Offset})
			}
		case dwarf.TagInlinedSubroutine:
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok && len(stack) > 0 {
				sites = append(sites, site{o, stack[len(stack)-1].off})
			}
		}
		if e.Children {
			depth++
		}
	}
	var symbol func(off dwarf.Offset, hops int) string
	symbol = func(off dwarf.Offset, hops int) string {
		x, ok := dies[off]
		switch {
		case !ok || hops > 8:
			return ""
		case x.linkage != "":
			return x.linkage
		case x.spec != 0:
			if s := symbol(x.spec, hops+1); s != "" {
				return s
			}
		case x.origin != 0:
			if s := symbol(x.origin, hops+1); s != "" {
				return s
			}
		}
		return x.name
	}
	out := map[string][]string{}
	for _, s := range sites {
		in, outer := symbol(s.origin, 0), Demangle(symbol(s.outer, 0))
		if in != "" && !slices.Contains(out[in], outer) {
			out[in] = append(out[in], outer)
		}
	}
	return out, nil
}

// cloneSuffixes are the names gcc gives specialized copies of a function:
// callers may call those instead of the function itself.
var cloneSuffixes = []string{".constprop.", ".isra.", ".part.", ".specialized."}

// cInlines is what one object's DWARF and symbols say about copies of its
// functions, read once per file.
type cInlines struct {
	once    sync.Once
	dwarf   bool
	inlined map[string][]string
	clones  map[string][]string
	err     error
}

var cInlineCache sync.Map // path -> *cInlines

// CInlined reports where the C or C++ function sym (its symbol name) of
// the object at path has copies that a patch of its entry would miss: the
// functions it was inlined into (from DWARF) and gcc's specialized clones
// (sym.constprop.N, ...; from the symbol table). known is false when the
// object has no DWARF, so inlining cannot be told.
func CInlined(path, sym string) (copies []string, known bool, err error) {
	v, _ := cInlineCache.LoadOrStore(path, &cInlines{})
	c := v.(*cInlines)
	c.once.Do(func() {
		f, err := elf.Open(path)
		if err != nil {
			c.err = fmt.Errorf("unwind: %w", err)
			return
		}
		defer f.Close()
		c.clones = map[string][]string{}
		syms, _ := f.Symbols()
		for _, s := range syms {
			for _, suf := range cloneSuffixes {
				if i := strings.Index(s.Name, suf); i > 0 && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
					c.clones[s.Name[:i]] = append(c.clones[s.Name[:i]], s.Name)
				}
			}
		}
		d, err := f.DWARF()
		if err != nil {
			return // no DWARF: unknown
		}
		c.dwarf = true
		c.inlined, c.err = cInlineMap(d)
	})
	if c.err != nil {
		return nil, false, c.err
	}
	copies = append(slices.Clone(c.inlined[sym]), c.clones[sym]...)
	return copies, c.dwarf, nil
}
