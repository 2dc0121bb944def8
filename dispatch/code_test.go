package dispatch

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestSwapQuadReportsWrites: swapQuad says whether the new bytes are in
// place, also when a step after the store fails, and a retry of a write
// already in place succeeds. Callers keep their state in step with the
// code on that word alone.
func TestSwapQuadReportsWrites(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, pageSize, protRX, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	q := unsafe.Pointer(&mem[64])
	old, patched := [8]byte{}, [8]byte{0xE9, 1, 2, 3, 4, 0xCC, 0xCC, 0xCC}

	written, err := swapQuad(q, [8]byte{9}, patched)
	if written || !errors.Is(err, ErrCodeChanged) {
		t.Fatalf("unexpected bytes: written %v, err %v", written, err)
	}

	injected := errors.New("injected sync failure")
	syncCores = func() error { return injected }
	written, err = swapQuad(q, old, patched)
	syncCores = SyncCores
	if !written || !errors.Is(err, injected) || *(*[8]byte)(q) != patched {
		t.Fatalf("failed sync after the store: written %v, err %v, bytes % x", written, err, *(*[8]byte)(q))
	}
	if written, err = swapQuad(q, old, patched); !written || err != nil {
		t.Fatalf("retry of a write in place: written %v, err %v", written, err)
	}
	if written, err = swapQuad(q, patched, old); !written || err != nil || *(*[8]byte)(q) != old {
		t.Fatalf("restore: written %v, err %v", written, err)
	}
	if _, err := swapQuad(unsafe.Pointer(&mem[3]), old, patched); err == nil {
		t.Fatal("unaligned quadword accepted")
	}
}
