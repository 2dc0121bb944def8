//go:build linux

package unwind

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// exeID returns the inode and device of the running executable, to tell
// its mappings from those of other objects.
func exeID() (ino, dev uint64) {
	if st, err := os.Stat("/proc/self/exe"); err == nil {
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			return s.Ino, s.Dev
		}
	}
	return 0, 0
}

// mkdev combines a device number as /proc/self/maps prints it.
func mkdev(major, minor uint64) uint64 { return unix.Mkdev(uint32(major), uint32(minor)) }
