//go:build linux

package unwind

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSourceFileOnlyRegular: a source path that names a FIFO or a
// directory is no witness, and reading it neither blocks (a FIFO opened
// for reading waits for a writer) nor fails later reads of a real file.
func TestSourceFileOnlyRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "p.go")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	real := filepath.Join(dir, "q.go")
	if err := os.WriteFile(real, []byte("package q\n\n//go:noinline\nfunc F() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	built := time.Now().Add(time.Hour)
	im := &Image{}
	done := make(chan bool)
	go func() {
		_, ok1 := im.sourceFile(fifo, built, 1)
		_, ok2 := im.sourceFile(dir, built, 1)
		done <- ok1 || ok2
	}()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a FIFO or a directory was read as source")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO as source blocked")
	}
	c, ok := im.sourceFile(real, built, 4)
	if !ok || string(c.src) != "package q\n\n//go:noinline\nfunc F() {}\n" {
		t.Fatalf("regular file: %v, %q", ok, c.src)
	}
}

// TestSourceOpenIsTheFileStated: a source file is opened only as the
// regular file stat'ed, unchanged: replaced by a FIFO since, it is
// neither opened (that would block) nor read, and one rewritten since
// is refused.
func TestSourceOpenIsTheFileStated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.go")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("package p\n")
	f, err := statSrc(path)
	if err != nil || !f.reg {
		t.Fatalf("statSrc: %v, regular %v", err, f.reg)
	}
	if err := f.open(); err != nil {
		t.Fatalf("open of the file stat'ed: %v", err)
	}
	f.close()

	f, _ = statSrc(path)
	write("package p // longer now\n")
	if err := f.open(); err == nil {
		f.close()
		t.Fatal("opened a file rewritten since it was stat'ed")
	}

	f, _ = statSrc(path)
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error)
	go func() { done <- f.open() }()
	select {
	case err := <-done:
		if err == nil {
			f.close()
			t.Fatal("opened a FIFO that replaced the file stat'ed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("opening a FIFO that replaced the file stat'ed blocked")
	}
}
