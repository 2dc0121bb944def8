//go:build linux && amd64

package dispatch

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// cas16 compares the 16-byte aligned octoword at addr with old and, if
// they are equal, stores new, with one LOCK CMPXCHG16B: one atomic store,
// as a quadword's compare-and-swap is. It reports whether it stored.
//
//go:noescape
func cas16(addr unsafe.Pointer, oldLo, oldHi, newLo, newHi uint64) bool

// wideOK reports whether patches may span an aligned octoword (16 bytes)
// here: only where CMPXCHG16B exists.
func wideOK() bool { return cpu.X86.HasCX16 }
