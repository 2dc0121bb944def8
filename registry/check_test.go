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

// TestCheckBadInput: Check of no image and CheckC of a file or symbol that
// does not exist are typed refusals, not a panic or a verdict.
func TestCheckBadInput(t *testing.T) {
	var e *Error
	if err := Check(nil, 0x401000); !errors.Is(err, ErrNil) || !errors.As(err, &e) {
		t.Errorf("Check(nil) = %v, want an *Error wrapping ErrNil", err)
	}
	for _, tc := range []struct{ path, sym string }{
		{"/nonexistent/switchboard", "one"},
		{"/bin/true", "no_such_function_in_true"},
	} {
		if err := CheckC(tc.path, tc.sym); !errors.Is(err, ErrNotEntry) || !errors.As(err, &e) || e.Op != "CheckC" {
			t.Errorf("CheckC(%s, %s) = %v, want an *Error wrapping ErrNotEntry", tc.path, tc.sym, err)
		}
	}
}
