//go:build !linux

package unwind

// Off Linux there is no /proc/self/maps: Modules fails before these matter.
func exeID() (ino, dev uint64) { return 0, 0 }

func mkdev(major, minor uint64) uint64 { return major<<32 | minor }
