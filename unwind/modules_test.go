package unwind

import (
	"errors"
	"reflect"
	"testing"
	"unsafe"
)

// TestModules: the executable is listed with the load bias that AT_PHDR
// gives (an independent source: the auxiliary vector, not the maps), and
// holds this function.
func TestModules(t *testing.T) {
	mods, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	pc := reflect.ValueOf(TestModules).Pointer()
	var main *Module
	for i := range mods {
		if mods[i].Main {
			main = &mods[i]
		}
	}
	if main == nil {
		t.Fatalf("no executable among %+v", mods)
	}
	if main.Bias != self.Bias || !main.Contains(pc) {
		t.Fatalf("executable: bias %#x (AT_PHDR says %#x), holds %#x: %v", main.Bias, self.Bias, pc, main.Contains(pc))
	}
	if _, _, err := LookupC(0x1234); !errors.Is(err, ErrNoModule) {
		t.Fatalf("LookupC(0x1234) = %v, want ErrNoModule", err)
	}
	if _, _, err := LookupSymbol("no_such_function_anywhere"); !errors.Is(err, ErrNoModule) {
		t.Fatalf("LookupSymbol = %v, want ErrNoModule", err)
	}
}

// TestImageAt: code of the program is in Self's image; addresses in no Go
// module (unmapped, the heap) wrap ErrNotGo, never an image.
func TestImageAt(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ImageAt(reflect.ValueOf(TestImageAt).Pointer())
	if err != nil || im != self {
		t.Fatalf("ImageAt(this function) = %v, %v; want Self", im, err)
	}
	heap := new([64]byte)
	for _, pc := range []uintptr{0x1234, uintptr(unsafe.Pointer(heap))} {
		if im, err := ImageAt(pc); !errors.Is(err, ErrNotGo) || im != nil {
			t.Errorf("ImageAt(%#x) = %v, %v; want ErrNotGo", pc, im, err)
		}
	}
	// A test binary loads no plugin (registry's TestPluginStorm runs a
	// program that does).
	if ims, errs := Plugins(); len(ims) != 0 || len(errs) != 0 {
		t.Errorf("Plugins() = %v, %v in a program without plugins", ims, errs)
	}
}

// TestOpenAt: OpenAt moves every function and segment by the bias.
func TestOpenAt(t *testing.T) {
	a, err := Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	const bias = 0x7f0000000000
	b, err := OpenAt("/proc/self/exe", bias)
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := a.Funcs(), b.Funcs()
	if len(fa) != len(fb) || b.Bias != bias || b.Loads()[0].Start != a.Loads()[0].Start+bias {
		t.Fatalf("%d and %d functions, bias %#x", len(fa), len(fb), b.Bias)
	}
	for i := range fa {
		if fb[i].Entry != fa[i].Entry+bias || fb[i].Next != fa[i].Next+bias || fb[i].Name != fa[i].Name {
			t.Fatalf("function %d: %+v at bias 0, %+v at %#x", i, fa[i], fb[i], bias)
		}
	}
}
