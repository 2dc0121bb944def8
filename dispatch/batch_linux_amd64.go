//go:build linux && amd64

package dispatch

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard"
)

// mprotect is unix.Mprotect, replaced by tests to inject a failure.
var mprotect = unix.Mprotect

// SwapQuads applies every swap or none. It checks first that every
// quadword holds its Old bytes; then, page by page, it makes the page RWX,
// compare-and-swaps each quadword of that page and makes it RX again; one
// SyncCores follows the last page. A store or protection change that fails
// rolls back the stores already done, so nothing changes.
//
// Each quadword changes with one atomic store, so a thread running any of
// the functions sees its old or its new code; different quadwords take
// effect at different moments, all before SwapQuads returns.
//
// written reports whether every quadword holds New on return: true with an
// error means the stores took effect and serializing the cores failed.
func SwapQuads(swaps []QuadSwap) (written bool, err error) {
	if len(swaps) == 0 {
		return true, nil
	}
	s := slices.Clone(swaps)
	slices.SortFunc(s, func(a, b QuadSwap) int { return cmp.Compare(uintptr(a.At), uintptr(b.At)) })
	for i, w := range s {
		if uintptr(w.At)&(w.size()-1) != 0 {
			return false, fmt.Errorf("quadword %p is not aligned", w.At)
		}
		if i > 0 && uintptr(s[i-1].At)+s[i-1].size() > uintptr(w.At) {
			return false, fmt.Errorf("quadword %p is written twice in one batch", w.At)
		}
		if w.Wide && !wideOK() {
			return false, fmt.Errorf("%w: no CMPXCHG16B on this CPU", ErrUnsupported)
		}
	}
	writeMu.Lock()
	defer writeMu.Unlock()
	var changed []error
	for _, w := range s {
		if live := loadQuad(w.At); live != w.Old {
			changed = append(changed, fmt.Errorf("%p holds % x, expected % x", w.At, live, w.Old))
		}
		if !w.Wide {
			continue
		}
		if live := loadQuad(unsafe.Add(w.At, 8)); live != w.OldHi {
			changed = append(changed, fmt.Errorf("%p holds % x, expected % x", unsafe.Add(w.At, 8), live, w.OldHi))
		}
	}
	if len(changed) > 0 {
		return false, fmt.Errorf("%w: %w", ErrCodeChanged, errors.Join(changed...))
	}
	for lo := 0; lo < len(s); {
		hi := lo + 1
		for hi < len(s) && pageAddr(s[hi].At) == pageAddr(s[lo].At) {
			hi++
		}
		done, err := swapPage(s[lo:hi], false)
		if err != nil || done < hi-lo {
			// Undo this page's stores, then the earlier pages'.
			errs := []error{err}
			if _, rerr := swapPage(s[lo:lo+done], true); rerr != nil {
				errs = append(errs, rerr)
			}
			for p := lo; p > 0; {
				q := p - 1
				for q > 0 && pageAddr(s[q-1].At) == pageAddr(s[p-1].At) {
					q--
				}
				if n, rerr := swapPage(s[q:p], true); rerr != nil || n < p-q {
					errs = append(errs, fmt.Errorf("rolling back page %#x: %d of %d restored: %v", pageAddr(s[q].At), n, p-q, rerr))
				}
				p = q
			}
			if len(errs) > 1 {
				return false, fmt.Errorf("%w: %w", ErrPartial, errors.Join(errs...))
			}
			return false, errs[0]
		}
		lo = hi
	}
	return true, syncCores()
}

// swapPage stores the swaps of one page (New over Old, or Old over New
// when back), between one RWX and one RX. It returns how many stores took
// effect, in order. A failure to restore RX is returned with them: the
// caller rolls back.
func swapPage(s []QuadSwap, back bool) (done int, err error) {
	if len(s) == 0 {
		return 0, nil
	}
	page := pageOf(s[0].At)
	if err := mprotect(page, protRWX); err != nil {
		return 0, fmt.Errorf("mprotect %p RWX: %w", &page[0], err)
	}
	var cas error
	le := binary.LittleEndian
	for _, w := range s {
		old, new, oldHi, newHi := w.Old, w.New, w.OldHi, w.NewHi
		if back {
			old, new, oldHi, newHi = new, old, newHi, oldHi
		}
		if w.Wide {
			if !cas16(w.At, le.Uint64(old[:]), le.Uint64(oldHi[:]), le.Uint64(new[:]), le.Uint64(newHi[:])) {
				cas = fmt.Errorf("%w: %p holds % x, expected % x % x", ErrCodeChanged, w.At, loadOcta(w.At), old, oldHi)
				break
			}
		} else if !atomic.CompareAndSwapUint64((*uint64)(w.At), le.Uint64(old[:]), le.Uint64(new[:])) {
			cas = fmt.Errorf("%w: %p holds % x, expected % x", ErrCodeChanged, w.At, loadQuad(w.At), old)
			break
		}
		done++
	}
	if err := mprotect(page, protRX); err != nil {
		return done, errors.Join(cas, fmt.Errorf("mprotect %p RX: %w", &page[0], err))
	}
	return done, cas
}

func pageAddr(p unsafe.Pointer) uintptr { return uintptr(p) &^ (pageSize - 1) }

func loadQuad(at unsafe.Pointer) (q [8]byte) {
	binary.LittleEndian.PutUint64(q[:], atomic.LoadUint64((*uint64)(at)))
	return q
}

// InstallAll is Install for many patches: it writes every site with the
// pointer to its route, one RWX and one RX per relay page, and serializes
// every core once, so every site is complete everywhere before any
// prologue leads to it. routes[i] is ps[i]'s route, which the caller keeps
// reachable for the life of the process. Patches already installed are
// skipped.
func InstallAll(ps []*Patch, routes []*switchboard.Route) error {
	if len(ps) != len(routes) {
		return fmt.Errorf("InstallAll: %d patches, %d routes", len(ps), len(routes))
	}
	// Before anything changes: slots alone write no code, but lead to
	// prologue writes that must serialize the cores.
	if err := Writable(); err != nil {
		return err
	}
	var todo []item
	for i, p := range ps {
		if routes[i] == nil {
			return fmt.Errorf("%s: nil route", p.Name)
		}
		if !p.installed {
			if p.pageBytes() == nil || p.Evict.simulated() {
				return fmt.Errorf("%s: relay page %#x is simulated", p.Name, p.page.addr)
			}
			todo = append(todo, item{p, routes[i]})
		}
	}
	// Eviction stubs go in first, each with its own page's header: they
	// are few (tiny leaves of non-PIE binaries), and like sites complete
	// before any prologue leads to them.
	var evs []*Patch
	for _, it := range todo {
		if it.p.Evict != nil {
			evs = append(evs, it.p)
		}
	}
	slices.SortFunc(todo, func(a, b item) int { return cmp.Compare(a.p.page.addr, b.p.page.addr) })
	if len(todo) == 0 {
		return nil
	}
	writeMu.Lock()
	for _, p := range evs {
		for ev := p.Evict; ev != nil; ev = ev.Next {
			if err := writeSite(ev.page, ev.Addr, ev.Code); err != nil {
				writeMu.Unlock()
				return refuseErr(p, ReasonMap, err)
			}
		}
	}
	for lo := 0; lo < len(todo); {
		hi := lo + 1
		for hi < len(todo) && todo[hi].p.page == todo[lo].p.page {
			hi++
		}
		if err := writeSites(todo[lo:hi]); err != nil {
			writeMu.Unlock()
			return refuseErr(todo[lo].p, ReasonMap, err)
		}
		lo = hi
	}
	writeMu.Unlock()
	// Slots wrote no code: only routes, as data.
	if len(evs) > 0 || slices.ContainsFunc(todo, func(it item) bool { return !it.p.slot }) {
		if err := syncCores(); err != nil {
			return err
		}
	}
	for _, it := range todo {
		it.p.installed = true
	}
	return nil
}

func (it item) patch() *Patch { return it.p }

type item struct {
	p *Patch
	r *switchboard.Route
}

// writeSites writes the header and the sites of patches sharing one relay
// page. The bytes were int3 and unreachable until now.
func writeSites(items []item) error {
	p0 := items[0].patch()
	if p0.page.slots {
		// Slots: routes only, and the page's first use makes it executable.
		for _, it := range items {
			it.p.storeRoute(it.r)
		}
		return execSlots(p0.page)
	}
	mem, err := openPage(p0.page)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(mem[0:], uint64(switchboard.DispatcherPC()))
	binary.LittleEndian.PutUint64(mem[8:], uint64(switchboard.CallDispatcherPC()))
	for _, it := range items {
		p := it.patch()
		copy(mem[p.Site-p.page.addr:], p.siteCode(it.r))
	}
	return closePage(p0.page, mem)
}
