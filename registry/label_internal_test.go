package registry

import (
	"context"
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// TestLabelWord checks the probe on the running toolchain: it finds one
// word, and that word is what pprof sets, what children inherit, and (by
// the layout check) a label list that reads back as set.
func TestLabelWord(t *testing.T) {
	off, err := labelOffset()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("label word at g+%d, layout readable: %v", off, labelProbe.layout)
	if !labelProbe.layout {
		t.Errorf("label layout not recognized on this toolchain")
	}
	done := make(chan []string)
	go func() {
		ctx := pprof.WithLabels(context.Background(), pprof.Labels("k1", "v1", "k0", "v0"))
		pprof.SetGoroutineLabels(ctx)
		inner := make(chan []string)
		go func() {
			kv, err := labelList(off)
			if err != nil {
				t.Error(err)
			}
			inner <- kv
		}()
		done <- <-inner
	}()
	got := <-done
	want := []string{"k0", "v0", "k1", "v1"}
	if len(got) != len(want) {
		t.Fatalf("labels of a child: %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("labels of a child: %q, want %q", got, want)
		}
	}
}

// TestLabelProbeFailsClosed: where the label word could not be verified,
// every goroutine-scoped Set is refused with ErrUnsupported, naming the
// reason, and changes nothing (not even the goroutine's labels).
func TestLabelProbeFailsClosed(t *testing.T) {
	labelOffset()
	saved := labelProbe.err
	labelProbe.err = because(ErrUnsupported, "goroutine trees: forced by the test")
	defer func() { labelProbe.err = saved }()
	off := labelProbe.off
	// A victim outside Switchboard's protected packages.
	victim := fmt.Sprintf
	entry := unsafe.Pointer(reflect.ValueOf(victim).Pointer())
	before, code := List(), *(*[8]byte)(entry)
	labels := labelWordAt(off)
	err := SetWith(victim, func(string, ...any) string { return "" }, ForGoroutine())
	var re *Error
	if !errors.Is(err, ErrUnsupported) || !errors.As(err, &re) || !strings.Contains(err.Error(), "forced by the test") {
		t.Fatalf("got %v, want an *Error wrapping ErrUnsupported with the reason", err)
	}
	if labelWordAt(off) != labels {
		t.Error("the refused Set changed the goroutine's labels")
	}
	if diff := cmp.Diff(before, List()); diff != "" {
		t.Errorf("List changed:\n%s", diff)
	}
	if *(*[8]byte)(entry) != code || victim("%d", 5) != "5" {
		t.Error("code or behaviour changed")
	}
}

// TestLabelWordMatchesDWARF checks the probe against an independent
// oracle: the offset of runtime.g's labels field in the DWARF of a program
// built by the same toolchain.
func TestLabelWordMatchesDWARF(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	off, err := labelOffset()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, src)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	for r := d.Reader(); ; {
		e, err := r.Next()
		if err != nil || e == nil {
			t.Fatalf("runtime.g not in DWARF (%v)", err)
		}
		if e.Tag != dwarf.TagStructType || e.Val(dwarf.AttrName) != "runtime.g" {
			continue
		}
		typ, err := d.Type(e.Offset)
		if err != nil {
			t.Fatal(err)
		}
		st := typ.(*dwarf.StructType)
		for _, fld := range st.Field {
			if fld.Name == "labels" {
				t.Logf("probe: g+%d; DWARF of %s: g+%d, sizeof(g) %d", off, runtime.Version(), fld.ByteOffset, st.ByteSize)
				if uintptr(fld.ByteOffset) != off {
					t.Fatalf("probe found g+%d, DWARF says g+%d", off, fld.ByteOffset)
				}
				if st.ByteSize < gScan {
					t.Fatalf("g is %d bytes, the probe reads %d", st.ByteSize, gScan)
				}
				return
			}
		}
		t.Fatal("runtime.g has no labels field")
	}
}

// TestJoinTreeKeepsLabels: a goroutine joining a tree keeps its labels and
// gains the tree's; undoing the join puts its labels back.
func TestJoinTreeKeepsLabels(t *testing.T) {
	off, err := labelOffset()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		joined, undone []string
		undoneWord     uintptr
		err            error
	}
	run := func(kv ...string) result {
		done := make(chan result)
		go func() {
			var r result
			if len(kv) > 0 {
				pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(kv...)))
			}
			reg.mu.Lock()
			defer reg.mu.Unlock()
			if scoped.trees == nil {
				scoped.trees = map[uintptr]*tree{}
			}
			tr, undo, err := joinTree(off)
			if err != nil {
				r.err = err
				done <- r
				return
			}
			r.joined, _ = labelList(off)
			if scoped.trees[labelWordAt(off)] != tr {
				r.err = errors.New("the tree is not registered under the goroutine's label word")
			}
			undo()
			r.undone, _ = labelList(off)
			r.undoneWord = labelWordAt(off)
			done <- r
		}()
		return <-done
	}
	r := run("req", "7", "a", "b")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.joined) != 6 || r.joined[0] != "a" || r.joined[2] != "req" || r.joined[4] != treeKey || !strings.HasPrefix(r.joined[5], "tree-") {
		t.Errorf("joined labels %q, want a=b, req=7 and the tree's", r.joined)
	}
	if diff := cmp.Diff([]string{"a", "b", "req", "7"}, r.undone); diff != "" {
		t.Errorf("labels after undo:\n%s", diff)
	}
	if r = run(); r.err != nil || r.undoneWord != 0 {
		t.Errorf("a goroutine without labels: after undo the word is %#x (%v), want 0", r.undoneWord, r.err)
	}
}
