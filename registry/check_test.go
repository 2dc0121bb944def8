package registry

import (
	"errors"
	"reflect"
	"runtime"
	"testing"
)

// TestCheckRefusals: Check's typed refusals on the running test binary,
// for what needs no DWARF to tell (go test strips it).
func TestCheckRefusals(t *testing.T) {
	self := selfImage(t)
	gc := reflect.ValueOf(runtime.GC).Pointer()
	for _, tc := range []struct {
		name  string
		entry uintptr
		want  error
	}{
		{"runtime.GC", gc, ErrProtected},
		{"runtime.GC+1", gc + 1, ErrNotEntry},
		{"a method value", reflect.ValueOf(new(nameList).FuncNames).Pointer(), ErrMethodValue},
	} {
		err := Check(self, tc.entry)
		var e *Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || e.Op != "Check" {
			t.Errorf("Check(%s) = %v, want an *Error wrapping %v", tc.name, err, tc.want)
		}
	}
}
