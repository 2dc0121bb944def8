package unwind

import (
	"debug/dwarf"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// TestInlinedCopiesAgreeWithDWARF reads the test binary's inline trees
// (moduledata located under this toolchain, each tree's names checked
// against runtime.FuncForPC) and checks every function they say was
// inlined against DWARF, read with the standard library's reader: an
// abstract subprogram or an inlined subroutine of that name.
func TestInlinedCopiesAgreeWithDWARF(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	d, err := im.file.DWARF()
	if err != nil {
		t.Skipf("no DWARF: %v", err)
	}
	inlined := dwarfInlinedNames(t, d)
	x, err := func() (*treeIndex, error) {
		im.treesOnce.Do(func() { im.trees, im.treesErr = im.readTrees() })
		return im.trees, im.treesErr
	}()
	if err != nil {
		t.Fatal(err)
	}
	if len(x.into) < 100 {
		t.Fatalf("only %d functions inlined anywhere", len(x.into))
	}
	for name, into := range x.into {
		if !inlined[name] {
			t.Errorf("the trees say %s was inlined (into %d functions), DWARF does not", name, len(into))
		}
	}
	// A function of this package inlined here, with code of its own.
	into, err := im.InlinedCopies(reflect.ValueOf((*pclntab).nameAt).Pointer())
	if err != nil || !slices.Contains(into, "github.com/switchboard-go/switchboard/unwind.(*pclntab).checkTree.func1") {
		t.Errorf("InlinedCopies((*pclntab).nameAt) = %v, %v; want checkTree.func1 among them", into, err)
	}
	if into, err := im.InlinedCopies(reflect.ValueOf(noinlineVictim).Pointer()); err != nil || len(into) != 0 {
		t.Errorf("InlinedCopies(noinlineVictim) = %v, %v; want none", into, err)
	}
	t.Logf("%d functions inlined somewhere by the trees, %d names inlined by DWARF", len(x.into), len(inlined))
}

// TestInlineTreesFailClosed: a misplaced gofunc fails the check against
// the runtime's names.
func TestInlineTreesFailClosed(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	candidates, err := im.gofunc()
	if err != nil {
		t.Fatal(err)
	}
	var gofunc []byte
	for _, c := range candidates {
		if _, err := im.readTreesAt(c); err == nil {
			gofunc = c
			break
		}
	}
	if gofunc == nil {
		t.Fatalf("none of %d candidates for gofunc passes", len(candidates))
	}
	tab := im.pcln
	for i := range tab.nfunc {
		f := tab.fn(i)
		tree, _, ok := tab.inlTree(f, gofunc[16:])
		if !ok {
			continue
		}
		if err := tab.checkTree(f, tree, im.Bias); err == nil {
			t.Fatalf("%s: a tree read 16 bytes off passed the check", tab.name(f))
		}
		return
	}
	t.Fatal("no function has an inline tree")
}

func dwarfInlinedNames(t *testing.T, d *dwarf.Data) map[string]bool {
	t.Helper()
	names := map[dwarf.Offset]string{}
	var origins []dwarf.Offset
	out := map[string]bool{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			break
		}
		switch e.Tag {
		case dwarf.TagSubprogram:
			if n, ok := e.Val(dwarf.AttrName).(string); ok {
				names[e.Offset] = n
				if _, ok := e.Val(dwarf.AttrInline).(int64); ok {
					out[n] = true
				}
			}
		case dwarf.TagInlinedSubroutine:
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				origins = append(origins, o)
			}
		}
	}
	for _, o := range origins {
		out[names[o]] = true
	}
	if len(out) == 0 {
		t.Fatal(errors.New("DWARF names no inlined function"))
	}
	return out
}
