package unwind

import (
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
	oracle, err := dwarfInlines(d)
	if err != nil {
		t.Fatal(err)
	}
	inlined := func(name string) bool { return oracle.abstract[name] || len(oracle.into[name]) > 0 }
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
		if !inlined(name) {
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
	t.Logf("%d functions inlined somewhere by the trees, %d abstract subprograms in DWARF", len(x.into), len(oracle.abstract))
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
