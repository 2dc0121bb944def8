//go:build linux

package unwind

import (
	"syscall"
	"time"
)

// srcFile is a source file NoInline reads, with the syscall package: os
// looked the path up twice for a stat and an open, and offered the file
// to the poller.
type srcFile struct {
	fd   int
	size int64
	mod  time.Time
	reg  bool // a regular file, open (fd) when true
}

// openSrc opens path if it is a regular file. It is stat'ed first, and
// opened non-blocking: opening a FIFO would block, and opening a device
// may do something. The open file must be the file stat'ed.
func openSrc(path string) (srcFile, error) {
	var st, fst syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return srcFile{}, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return srcFile{}, nil
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	for err == syscall.EINTR { // FUSE and CIFS return it despite SA_RESTART
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		return srcFile{}, err
	}
	if err := syscall.Fstat(fd, &fst); err != nil || fst.Dev != st.Dev || fst.Ino != st.Ino || fst.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return srcFile{}, err
	}
	return srcFile{fd: fd, size: fst.Size, mod: time.Unix(fst.Mtim.Unix()), reg: true}, nil
}

// readAt fills b from off.
func (f srcFile) readAt(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := syscall.Pread(f.fd, b, off)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return syscall.EIO // shorter than fstat said
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (f srcFile) close() {
	if f.reg {
		syscall.Close(f.fd)
	}
}
