package unwind

import (
	"errors"
	"reflect"
	"testing"
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
