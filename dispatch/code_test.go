//go:build linux && amd64

package dispatch

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
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

// TestNoSyncCoreRefusesWrites: without membarrier SYNC_CORE nothing proves
// that every core will see a code write, so every write is refused with
// ErrUnsupported before any byte or protection changes.
func TestNoSyncCoreRefusesWrites(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, pageSize, protRX, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	defer func() { registerSyncCore, writable = registerMembarrier, sync.OnceValue(writableNow) }()
	registerSyncCore = func() error { return unix.EINVAL } // a kernel without it
	writable = sync.OnceValue(writableNow)

	if err := Writable(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Writable: %v, want ErrUnsupported", err)
	}
	if err := SyncCores(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("SyncCores: %v, want ErrUnsupported", err)
	}
	q := unsafe.Pointer(&mem[64])
	patched := [8]byte{0xE9, 1, 2, 3, 4, 0xCC, 0xCC, 0xCC}
	if written, err := swapQuad(q, [8]byte{}, patched); written || !errors.Is(err, ErrUnsupported) || *(*[8]byte)(q) != [8]byte{} {
		t.Fatalf("swapQuad: written %v, err %v, bytes % x", written, err, *(*[8]byte)(q))
	}
	pg := &relayPage{addr: uintptr(unsafe.Pointer(&mem[0])), mem: unsafe.Pointer(&mem[0]), exec: true}
	if err := writeSite(pg, uintptr(unsafe.Pointer(&mem[32])), []byte{0x90}); !errors.Is(err, ErrUnsupported) || mem[32] != 0 {
		t.Fatalf("writeSite: %v, byte %#x", err, mem[32])
	}
	if perms := mapsPerms(t, uintptr(q)); perms != "r-xp" {
		t.Fatalf("page protection changed to %s", perms)
	}
}

// mapsPerms reads the permissions of the mapping holding addr from
// /proc/self/maps.
func mapsPerms(t *testing.T, addr uintptr) string {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var lo, hi uintptr
		var perms string
		if n, _ := fmt.Sscanf(line, "%x-%x %s", &lo, &hi, &perms); n == 3 && lo <= addr && addr < hi {
			return perms
		}
	}
	t.Fatalf("%#x is not mapped", addr)
	return ""
}
