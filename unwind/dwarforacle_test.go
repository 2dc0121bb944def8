package unwind

import (
	"debug/dwarf"
	"fmt"
)

// dwarfInline is what DWARF says about inlining, read with debug/dwarf's
// reader over every entry: what Inlined did before the index, kept as the
// index's oracle.
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
