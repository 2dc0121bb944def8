//go:build linux && amd64

package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard"
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
	// A slot writes no code, but leads to a prologue write: refused too
	// (a review's finding: a batch of slots alone skipped the check).
	p := planSlot(t)
	route := new(switchboard.Route)
	for name, install := range map[string]func() error{
		"Install":    func() error { return p.Install(route) },
		"InstallAll": func() error { return InstallAll([]*Patch{p}, []*switchboard.Route{route}) },
	} {
		if err := install(); !errors.Is(err, ErrUnsupported) || p.installed {
			t.Fatalf("%s of a slot: %v, installed %v", name, err, p.installed)
		}
	}
	if perms := mapsPerms(t, p.page.addr); perms != "rw-p" || *(*uintptr)(unsafe.Add(p.page.mem, int(p.Key-p.page.addr)+switchboard.SlotRouteOffset)) != 0 {
		t.Fatalf("slot page %s after refusals, or its route stored", perms)
	}
}

// planSlot plans a standard Go prologue near this heap into a slot of a
// new slot page of the live address space. Nothing is written at the
// entry, which is never applied.
func planSlot(t *testing.T) *Patch {
	t.Helper()
	std := []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x4a, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10}
	entry := uintptr(unsafe.Pointer(&std[0]))&^15 + 0x40000
	pl := NewPlanner(Process{}, switchboard.DispatcherPC(), switchboard.CallDispatcherPC())
	pl.SlotDispatcher = switchboard.SlotDispatcherPC()
	p, err := pl.Plan(Func{Name: "std", Entry: entry, Size: len(std), Bytes: std}, SiteMode)
	if err != nil {
		t.Fatal(err)
	}
	if !p.slot {
		t.Fatalf("site %#x is not a slot", p.Site)
	}
	return p
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

// TestSlotInstallStoresOnlyTheRoute: installing a slot stores its route in
// the data page SlotRouteOffset past its return address and changes no
// byte of the slot page, which /proc/self/maps shows read-execute, its data
// page read-write.
func TestSlotInstallStoresOnlyTheRoute(t *testing.T) {
	p := planSlot(t)
	code := unsafe.Slice((*byte)(p.page.mem), pageSize)
	before := slices.Clone(code)
	route := new(switchboard.Route)
	var syncs int
	syncCores = func() error { syncs++; return SyncCores() }
	defer func() { syncCores = SyncCores }()
	if err := p.Install(route); err != nil {
		t.Fatal(err)
	}
	if syncs != 0 {
		t.Errorf("installing a slot serialized the cores %d times", syncs)
	}
	if !bytes.Equal(code, before) {
		t.Fatal("installing a slot changed its page")
	}
	got := *(*uintptr)(unsafe.Add(p.page.mem, int(p.Key-p.page.addr)+switchboard.SlotRouteOffset))
	if got != uintptr(unsafe.Pointer(route)) {
		t.Fatalf("data page holds %#x at key+%d, want the route %p", got, switchboard.SlotRouteOffset, route)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	want := map[uintptr]string{p.page.addr: "r-xp", p.page.addr + pageSize: "rw-p"}
	for _, l := range strings.Split(string(maps), "\n") {
		var lo, hi uintptr
		var perms string
		if _, err := fmt.Sscanf(l, "%x-%x %s", &lo, &hi, &perms); err != nil {
			continue
		}
		for a, w := range want {
			if lo <= a && a < hi {
				if perms != w {
					t.Errorf("page %#x is %s, want %s", a, perms, w)
				}
				delete(want, a)
			}
		}
	}
	if len(want) != 0 {
		t.Fatalf("pages not mapped: %v", want)
	}
}
