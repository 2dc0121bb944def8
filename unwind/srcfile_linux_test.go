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
