//go:build unix

package bench

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeText copies b over live code at at, the way gomonkey does: a plain
// copy between two mprotect calls.
func writeText(at unsafe.Pointer, b []byte) error {
	page := unsafe.Slice((*byte)(unsafe.Add(at, -int(uintptr(at)&4095))), 8192)
	if err := unix.Mprotect(page, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC); err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(at), len(b)), b)
	return unix.Mprotect(page, unix.PROT_READ|unix.PROT_EXEC)
}
