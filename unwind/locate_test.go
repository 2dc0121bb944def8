package unwind

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFindPclntab: the function table is found however the linker named
// its section, and without any section or symbol naming it: the same
// functions come out every way. The variants are made with objcopy from
// one binary, an independent tool rewriting the section headers.
func TestFindPclntab(t *testing.T) {
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("no objcopy (binutils):", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if b, err := exec.Command("go", "build", "-o", plain, src).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	variant := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		if b, err := exec.Command(objcopy, append(args, plain, out)...).CombinedOutput(); err != nil {
			t.Fatalf("objcopy %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return out
	}
	cases := []struct {
		name, path, how string
	}{
		{"internal linking", plain, "section .gopclntab"},
		{"Go 1.25 PIE name", variant("pie125", "--rename-section", ".gopclntab=.data.rel.ro.gopclntab"), "section .data.rel.ro.gopclntab"},
		{"unknown name, symbols", variant("renamed", "--rename-section", ".gopclntab=.rodata.tbl"), "symbol runtime.pclntab"},
		{"unknown name, stripped", variant("stripped", "--rename-section", ".gopclntab=.rodata.tbl", "--strip-all"), "header in the PT_LOAD segment"},
	}
	want, err := Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	goFuncs := func(im *Image) (out []Func) {
		for _, f := range im.Funcs() {
			if f.Go {
				out = append(out, f)
			}
		}
		return out
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := elf.Open(c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			syms, err := f.Symbols()
			if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
				t.Fatal(err)
			}
			if _, how, err := findPclntab(f, syms); err != nil || !strings.HasPrefix(how, c.how) {
				t.Fatalf("found by %q (%v), want %q", how, err, c.how)
			}
			im, err := Open(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(goFuncs(want), goFuncs(im)); d != "" {
				t.Errorf("Go functions differ (-plain +variant):\n%s", d)
			}
		})
	}
}
