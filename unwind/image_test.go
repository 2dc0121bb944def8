package unwind

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"
)

//go:noinline
func incr(x int) int { return x + 1 }

// small is inlined into callsSmall, where its loop keeps instructions of
// its own, so even a stripped test binary shows the inlining.
func small(s []int) (n int) {
	for _, v := range s {
		n += v * 3
	}
	return n
}

//go:noinline
func callsSmall(s []int) int { return small(s) + 1 }

var smallValue = small // an out-of-line copy exists too

func TestSelfSizesAndBytes(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	pc := reflect.ValueOf(incr).Pointer()
	f, ok := im.Lookup(pc + 2)
	if !ok {
		t.Fatalf("Lookup(%#x) found nothing", pc+2)
	}
	if f.Entry != pc || f.Name != runtime.FuncForPC(pc).Name() {
		t.Fatalf("Lookup = %+v, want entry %#x name %s", f, pc, runtime.FuncForPC(pc).Name())
	}
	// INCQ AX; RET
	want := []byte{0x48, 0xff, 0xc0, 0xc3}
	if f.Size != len(want) {
		t.Fatalf("size %d, want %d", f.Size, len(want))
	}
	fv := incr
	live := unsafe.Slice((*byte)(**(**unsafe.Pointer)(unsafe.Pointer(&fv))), f.Room())
	fromFile, err := im.Bytes(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(live[:f.Size], want) || !bytes.Equal(fromFile, live) {
		t.Fatalf("live % x, file % x, want % x", live, fromFile, want)
	}
	for _, b := range live[f.Size:] {
		if b != 0xCC {
			t.Fatalf("padding % x is not int3", live[f.Size:])
		}
	}
	if f.Next%32 != 0 {
		t.Errorf("next symbol %#x is not 32-byte aligned", f.Next)
	}
}

func TestLookupMisses(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := im.Lookup(0x1000); ok {
		t.Fatalf("Lookup(0x1000) = %+v", f)
	}
	var x int
	if f, ok := im.Lookup(uintptr(unsafe.Pointer(&x))); ok {
		t.Fatalf("Lookup(stack) = %+v", f)
	}
}

func TestInlined(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	_ = callsSmall([]int{1}) + smallValue(nil)
	callsSmallName := runtime.FuncForPC(reflect.ValueOf(callsSmall).Pointer()).Name()
	for _, tc := range []struct {
		fn   any
		want []string
	}{{small, []string{callsSmallName}}, {incr, nil}, {callsSmall, nil}} {
		name := runtime.FuncForPC(reflect.ValueOf(tc.fn).Pointer()).Name()
		inlined, got, err := im.Inlined(name)
		if err != nil {
			t.Fatal(err)
		}
		if inlined != (len(tc.want) > 0) || !slices.Equal(got, tc.want) {
			t.Errorf("Inlined(%s) = %q, want %q", name, got, tc.want)
		}
	}
	t.Logf("inlining read from %s", im.InlineSource)
}

func TestName(t *testing.T) {
	pc := reflect.ValueOf(incr).Pointer()
	if got, want := Name(pc+1), "github.com/switchboard-go/switchboard/unwind.incr"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if got := Name(0x10); got != "0x10" {
		t.Errorf("Name(0x10) = %q", got)
	}
}

func TestDemangle(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"_ZN3foo3barEv", "foo::bar()"},
		{"_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back(int const&)"},
		{"main.main", "main.main"},
		{"x_cgo_init", "x_cgo_init"},
	} {
		if got := Demangle(tc.in); got != tc.want {
			t.Errorf("Demangle(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestInliningPCData: a binary built with -gcflags=all=-l has no inline
// pcdata anywhere, the runtime included, so without DWARF it proves that
// nothing was inlined; a default build has some, and then Inlined cannot
// prove anything without DWARF.
func TestInliningPCData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	for _, tc := range []struct {
		flags []string
		want  bool
	}{{[]string{"-ldflags=-s -w"}, true}, {[]string{"-gcflags=all=-l", "-ldflags=-s -w"}, false}, {[]string{"-gcflags=all=-l"}, false}} {
		bin := filepath.Join(t.TempDir(), "selfprog")
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, tc.flags...), "./testdata/selfprog")...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %q: %v\n%s", tc.flags, err, out)
		}
		im, err := Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		got, err := im.pcln.inlining()
		if err != nil || got != tc.want {
			t.Errorf("%q: inline pcdata %v, %v; want %v", tc.flags, got, err, tc.want)
		}
		_, _, err = im.Inlined("main.compute")
		if wantErr := tc.want; errors.Is(err, ErrNoInlineProof) != wantErr {
			t.Errorf("%q: Inlined(main.compute) error %v, want ErrNoInlineProof %v", tc.flags, err, wantErr)
		}
	}
}

func TestStdPackage(t *testing.T) {
	for _, tc := range []struct {
		fn   any
		want string
		ok   bool
	}{{time.Sleep, "runtime", true}, {fmt.Println, "fmt", true}, {bytes.Equal, "bytes", true}, {incr, "", false}} {
		pc := reflect.ValueOf(tc.fn).Pointer()
		if got, ok := StdPackage(pc); got != tc.want || ok != tc.ok {
			t.Errorf("StdPackage(%s) = %q, %v; want %q, %v", runtime.FuncForPC(pc).Name(), got, ok, tc.want, tc.ok)
		}
	}
}
