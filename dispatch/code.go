//go:build linux && amd64

package dispatch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard"
)

const (
	protRX  = unix.PROT_READ | unix.PROT_EXEC
	protRWX = unix.PROT_READ | unix.PROT_WRITE | unix.PROT_EXEC

	// linux/membarrier.h; golang.org/x/sys/unix has only the syscall number.
	membarrierCmdQuery                            = 0
	membarrierCmdPrivateExpeditedSyncCore         = 1 << 5
	membarrierCmdRegisterPrivateExpeditedSyncCore = 1 << 6
)

// ErrCodeChanged: the bytes to be replaced are not the ones expected, so
// something else rewrote them. Nothing is written.
var ErrCodeChanged = errors.New("code bytes changed underneath")

// writeMu serializes every code write of this package, whoever calls it.
var writeMu sync.Mutex

// pageOf returns the page holding p, as a slice for mprotect.
func pageOf(p unsafe.Pointer) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(p, -int(uintptr(p)&(pageSize-1)))), pageSize)
}

// swapQuad replaces the aligned quadword at q with new if it holds old, in
// one atomic store, then serializes every core. The page keeps PROT_EXEC
// throughout: other threads may be running it.
//
// written reports whether q holds new on return, whatever the error: a
// failure after the store (restoring RX, serializing cores) leaves the new
// code in force, and callers must keep their state in step with it. A
// quadword that already holds new counts as written, so a retry after such
// a failure succeeds.
func swapQuad(q unsafe.Pointer, old, new [8]byte) (written bool, err error) {
	if uintptr(q)&7 != 0 {
		return false, fmt.Errorf("quadword %p is not aligned", q)
	}
	if err := Writable(); err != nil {
		return false, err
	}
	writeMu.Lock()
	defer writeMu.Unlock()
	word := (*uint64)(q)
	if atomic.LoadUint64(word) == binary.LittleEndian.Uint64(new[:]) {
		return true, syncCores()
	}
	page := pageOf(q)
	if err := unix.Mprotect(page, protRWX); err != nil {
		return false, codeWriteErr(fmt.Errorf("mprotect %p RWX: %w", &page[0], err), err)
	}
	written = atomic.CompareAndSwapUint64(word, binary.LittleEndian.Uint64(old[:]), binary.LittleEndian.Uint64(new[:]))
	errRX := unix.Mprotect(page, protRX)
	if !written {
		var live [8]byte
		binary.LittleEndian.PutUint64(live[:], atomic.LoadUint64(word))
		return false, errors.Join(fmt.Errorf("%w: %p holds % x, expected % x", ErrCodeChanged, q, live, old), errRX)
	}
	if errRX != nil {
		errRX = fmt.Errorf("mprotect %p RX after the write: %w", &page[0], errRX)
	}
	return true, errors.Join(errRX, syncCores())
}

// syncCores is SyncCores, replaced by tests to count calls or inject a
// failure.
var syncCores = SyncCores

// registerSyncCore registers this process for membarrier SYNC_CORE;
// replaced by tests to pretend the kernel lacks it.
var registerSyncCore = registerMembarrier

// writable caches the first answer of writableNow.
var writable = sync.OnceValue(writableNow)

func writableNow() error {
	if err := registerSyncCore(); err != nil {
		return fmt.Errorf("%w: no proven way to serialize every core after a code write: %v", ErrUnsupported, err)
	}
	return nil
}

// Writable reports whether this package can write live code here, as an
// error wrapping ErrUnsupported when it cannot. A write is safe only if
// every core is serialized after it, and only membarrier
// PRIVATE_EXPEDITED_SYNC_CORE (Linux 4.16+) proves that. An mprotect TLB
// shootdown is no substitute: it serializes only the cores the kernel
// interrupts, and AMD's INVLPGB broadcast flush interrupts none.
func Writable() error { return writable() }

func registerMembarrier() error {
	mask, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdQuery, 0, 0)
	if e != 0 {
		return fmt.Errorf("membarrier QUERY: %w", e)
	}
	if mask&membarrierCmdPrivateExpeditedSyncCore == 0 {
		return fmt.Errorf("membarrier offers no PRIVATE_EXPEDITED_SYNC_CORE (commands %#x)", mask)
	}
	if _, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdRegisterPrivateExpeditedSyncCore, 0, 0); e != 0 {
		return fmt.Errorf("membarrier REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: %w", e)
	}
	return nil
}

// SyncCores makes every thread of the process execute a serializing
// instruction before it next runs user code, so that none runs stale
// instructions after a code write (Intel SDM, cross-modifying code), with
// membarrier(PRIVATE_EXPEDITED_SYNC_CORE). Without it, it fails with
// ErrUnsupported (see Writable).
func SyncCores() error {
	if err := Writable(); err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdPrivateExpeditedSyncCore, 0, 0); e != 0 {
		return fmt.Errorf("membarrier SYNC_CORE: %w", e)
	}
	return nil
}

// SyncMethod names how SyncCores serializes cores here.
func SyncMethod() string {
	if err := Writable(); err != nil {
		return "none (" + err.Error() + ")"
	}
	return "membarrier(PRIVATE_EXPEDITED_SYNC_CORE)"
}

// Process is the live address space of this process.
type Process struct{}

// Busy parses /proc/self/maps.
func (Process) Busy() ([]Range, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	var out []Range
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		dash := bytes.IndexByte(line, '-')
		sp := bytes.IndexByte(line, ' ')
		if dash < 0 || sp < dash {
			continue
		}
		lo, err1 := strconv.ParseUint(string(line[:dash]), 16, 64)
		hi, err2 := strconv.ParseUint(string(line[dash+1:sp]), 16, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/self/maps: bad line %q", line)
		}
		out = append(out, Range{uintptr(lo), uintptr(hi)})
	}
	return out, sc.Err()
}

// Reserve maps size bytes at addr with MAP_FIXED_NOREPLACE and fills the
// first page with int3. It stays read-write until its first site is
// written and made read-execute: two mprotects fewer for each new page. A
// slot page's data page, after it, stays read-write.
func (Process) Reserve(addr uintptr, size int) (unsafe.Pointer, error) {
	// The address is a hint to the kernel, never dereferenced as given.
	hint := unsafe.Add(unsafe.Pointer(nil), addr)
	mem, err := unix.MmapPtr(-1, 0, hint, uintptr(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE)
	if err != nil {
		return nil, fmt.Errorf("mmap %#x: %w", addr, err)
	}
	if mem != hint {
		// A kernel before 4.17 takes the flag as a plain hint.
		_ = unix.MunmapPtr(mem, uintptr(size))
		return nil, fmt.Errorf("mmap %#x: got %p", addr, mem)
	}
	page := unsafe.Slice((*byte)(mem), pageSize)
	page[0] = 0xCC
	for n := 1; n < len(page); n *= 2 {
		copy(page[n:], page[:n])
	}
	return mem, nil
}

// Install writes the patch's relay site (or stub) with the pointer to
// route in it, then serializes every core, so the site is complete
// everywhere before any prologue leads to it. A slot (see slotCode) was
// written before its page was ever executable: installing it stores the
// route in the data page and writes no code. The pointer lies outside the
// garbage collector's view: the caller keeps route reachable for the life
// of the process. Installing twice is a no-op; sites are never removed.
func (p *Patch) Install(route *switchboard.Route) error {
	if p.installed {
		return nil
	}
	if route == nil {
		return fmt.Errorf("%s: nil route", p.Name)
	}
	if err := Writable(); err != nil {
		return err
	}
	if p.page.mem == nil || p.Evict.simulated() {
		return fmt.Errorf("%s: relay page %#x is simulated", p.Name, p.page.addr)
	}
	writeMu.Lock()
	var err error
	if p.slot {
		p.storeRoute(route)
		err = execSlots(p.page)
	} else {
		err = writeSite(p.page, p.Site, p.siteCode(route))
		// The stubs, like the site, are complete before the prologue leads
		// to them.
		for ev := p.Evict; err == nil && ev != nil; ev = ev.Next {
			err = writeSite(ev.page, ev.Addr, ev.Code)
		}
	}
	writeMu.Unlock()
	if errors.Is(err, ErrCodeWrite) {
		return err
	}
	if err != nil {
		return refuseErr(p, ReasonMap, err)
	}
	if !p.slot {
		if err := syncCores(); err != nil {
			return err
		}
	}
	p.installed = true
	return nil
}

// siteCode is the code written at the site, with the route in it.
func (p *Patch) siteCode(route *switchboard.Route) []byte {
	code := slices.Clone(p.SiteCode)
	binary.LittleEndian.PutUint64(code[p.RouteAt:], uint64(uintptr(unsafe.Pointer(route))))
	return code
}

// storeRoute stores a slot's route in its page's data page, at its return
// address plus switchboard.SlotRouteOffset. The data page is never
// executable: the store is data, and the prologue write that makes the
// slot reachable comes after it. The word is not 8-aligned, but stays in
// one cache line, where x86 stores and loads it in one access
// (TestSlotRoutesStayInALine). writeMu is held.
func (p *Patch) storeRoute(route *switchboard.Route) {
	at := unsafe.Add(p.page.mem, switchboard.SlotRouteOffset+int(p.Key-p.page.addr))
	atomic.StoreUintptr((*uintptr)(at), uintptr(unsafe.Pointer(route)))
}

// execSlots makes a slot page read-execute on its first use. Its bytes
// were all written while it was never executable. writeMu is held.
func execSlots(pg *relayPage) error {
	if pg.exec {
		return nil
	}
	return closePage(pg, unsafe.Slice((*byte)(pg.mem), pageSize))
}

// writeSite writes the page header and one site. The bytes it writes were
// int3 and unreachable until now; other sites of the page keep running.
func writeSite(pg *relayPage, site uintptr, code []byte) error {
	mem, err := openPage(pg)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(mem[0:], uint64(switchboard.DispatcherPC()))
	binary.LittleEndian.PutUint64(mem[8:], uint64(switchboard.CallDispatcherPC()))
	copy(mem[site-pg.addr:], code)
	return closePage(pg, mem)
}

// openPage makes a relay page writable (it is until its first site) and
// returns its memory. writeMu is held.
func openPage(pg *relayPage) ([]byte, error) {
	if err := Writable(); err != nil {
		return nil, err
	}
	mem := unsafe.Slice((*byte)(pg.mem), pageSize)
	if !pg.exec {
		return mem, nil
	}
	if err := mprotect(mem, protRWX); err != nil {
		return nil, codeWriteErr(fmt.Errorf("mprotect relay %#x RWX: %w", pg.addr, err), err)
	}
	return mem, nil
}

// closePage makes a relay page read-execute again, or for the first time.
// writeMu is held.
func closePage(pg *relayPage, mem []byte) error {
	if err := mprotect(mem, protRX); err != nil {
		return codeWriteErr(fmt.Errorf("mprotect relay %#x RX: %w", pg.addr, err), err)
	}
	pg.exec = true
	return nil
}

// Apply writes the prologue patch over the quadword's expected current
// contents from (the original, or another patch of the same function), in
// one atomic store, and serializes every core. entry must be the live
// function entry. written reports whether the patch is in force, even
// when err is not nil (see swapQuad).
func (p *Patch) Apply(entry unsafe.Pointer, from [8]byte) (written bool, err error) {
	if !p.installed {
		return false, fmt.Errorf("%s: site not installed", p.Name)
	}
	return p.swap(entry, from, p.patched)
}

// Restore puts the original quadword back; written as for Apply.
func (p *Patch) Restore(entry unsafe.Pointer) (written bool, err error) {
	return p.swap(entry, p.patched, p.orig)
}

func (p *Patch) swap(entry unsafe.Pointer, old, new [8]byte) (bool, error) {
	if uintptr(entry) != p.Entry {
		return false, fmt.Errorf("%s: patch planned for %#x, applied at %p", p.Name, p.Entry, entry)
	}
	q := unsafe.Add(entry, int(p.quad-p.Entry))
	if p.wide {
		oldHi, newHi := p.origHi, p.patchedHi
		if new == p.orig {
			oldHi, newHi = newHi, oldHi
		}
		return swapOcta(q, [16]byte(append(old[:], oldHi[:]...)), [16]byte(append(new[:], newHi[:]...)))
	}
	return swapQuad(q, old, new)
}

// swapOcta is swapQuad for an aligned octoword (16 bytes), with one
// LOCK CMPXCHG16B: an eviction whose second jump runs past the entry's
// quadword. The store is as atomic as a quadword's: one locked write
// within one cache line, which every core's instruction fetch sees whole
// or not at all, as it sees a quadword's (docs/design.md section 4).
func swapOcta(q unsafe.Pointer, old, new [16]byte) (written bool, err error) {
	if uintptr(q)&15 != 0 {
		return false, fmt.Errorf("octoword %p is not aligned", q)
	}
	if !wideOK() {
		return false, fmt.Errorf("%w: no CMPXCHG16B on this CPU", ErrUnsupported)
	}
	if err := Writable(); err != nil {
		return false, err
	}
	writeMu.Lock()
	defer writeMu.Unlock()
	le := binary.LittleEndian
	if loadOcta(q) == new {
		return true, syncCores()
	}
	page := pageOf(q)
	if err := unix.Mprotect(page, protRWX); err != nil {
		return false, codeWriteErr(fmt.Errorf("mprotect %p RWX: %w", &page[0], err), err)
	}
	written = cas16(q, le.Uint64(old[:8]), le.Uint64(old[8:]), le.Uint64(new[:8]), le.Uint64(new[8:]))
	errRX := unix.Mprotect(page, protRX)
	if !written {
		return false, errors.Join(fmt.Errorf("%w: %p holds % x, expected % x", ErrCodeChanged, q, loadOcta(q), old), errRX)
	}
	if errRX != nil {
		errRX = fmt.Errorf("mprotect %p RX after the write: %w", &page[0], errRX)
	}
	return true, errors.Join(errRX, syncCores())
}

// loadOcta reads an octoword as two atomic quadwords (for comparisons made
// under writeMu, which every code write of this package holds).
func loadOcta(q unsafe.Pointer) (o [16]byte) {
	binary.LittleEndian.PutUint64(o[:8], atomic.LoadUint64((*uint64)(q)))
	binary.LittleEndian.PutUint64(o[8:], atomic.LoadUint64((*uint64)(unsafe.Add(q, 8))))
	return o
}

func refuseErr(p *Patch, r Reason, err error) error {
	return &RefusalError{Func: p.Name, Entry: p.Entry, Reason: r, Detail: err.Error(), Err: ErrNoRelay}
}
