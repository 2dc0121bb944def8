//go:build linux

package crowd

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard/dispatch"
)

// low is the lowest address Linux maps by default (vm.mmap_min_addr).
const low = 0x10000

// Low maps PROT_NONE, with MAP_FIXED_NOREPLACE and no swap reserved,
// every page of [64 KiB, top) that nothing maps, and returns the function
// that unmaps them. A range something maps in the meantime is skipped.
func Low(top uintptr) (release func(), err error) {
	busy, err := dispatch.Process{}.Busy()
	if err != nil {
		return nil, fmt.Errorf("crowd: %w", err)
	}
	type region struct {
		p unsafe.Pointer
		n uintptr
	}
	var taken []region
	release = func() {
		for _, r := range taken {
			_ = unix.MunmapPtr(r.p, r.n)
		}
	}
	at := uintptr(low)
	take := func(end uintptr) error {
		if end <= at {
			return nil
		}
		// The address is a hint to the kernel, never dereferenced as given.
		hint := unsafe.Add(unsafe.Pointer(nil), at)
		p, err := unix.MmapPtr(-1, 0, hint, end-at, unix.PROT_NONE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED_NOREPLACE)
		switch {
		case errors.Is(err, unix.EEXIST):
			return nil
		case err != nil:
			return fmt.Errorf("crowd: mmap [%#x,%#x): %w", at, end, err)
		case p != hint:
			_ = unix.MunmapPtr(p, end-at)
			return fmt.Errorf("crowd: mmap %#x: got %p (no MAP_FIXED_NOREPLACE)", at, p)
		}
		taken = append(taken, region{p, end - at})
		return nil
	}
	for _, r := range busy {
		if r.Start >= top {
			break
		}
		if err := take(min(r.Start, top)); err != nil {
			release()
			return nil, err
		}
		at = max(at, r.End)
	}
	if err := take(top); err != nil {
		release()
		return nil, err
	}
	return release, nil
}
