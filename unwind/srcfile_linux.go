//go:build linux

package unwind

import (
	"syscall"
	"time"
)

// srcFile is a source file NoInline reads, with the syscall package (os
// offered every file to the poller): stat'ed by statSrc, and opened only
// when its text must be read.
type srcFile struct {
	path string
	st   syscall.Stat_t
	fd   int // -1 until opened
	size int64
	mod  time.Time
	reg  bool // a regular file
}

func statSrc(path string) (srcFile, error) {
	f := srcFile{path: path, fd: -1}
	if err := syscall.Stat(path, &f.st); err != nil {
		return f, err
	}
	f.size, f.mod = f.st.Size, time.Unix(f.st.Mtim.Unix())
	f.reg = f.st.Mode&syscall.S_IFMT == syscall.S_IFREG
	return f, nil
}

// open opens the regular file stat'ed, non-blocking: were the path a FIFO
// by now, opening it would block, and opening a device may do something.
// The file opened must be the one stat'ed, unchanged. Opening it again
// does nothing.
func (f *srcFile) open() error {
	if f.fd >= 0 {
		return nil
	}
	if !f.reg {
		return syscall.EINVAL
	}
	fd, err := syscall.Open(f.path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	for err == syscall.EINTR { // FUSE and CIFS return it despite SA_RESTART
		fd, err = syscall.Open(f.path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Dev != f.st.Dev || st.Ino != f.st.Ino || st.Size != f.st.Size || st.Mtim != f.st.Mtim {
		syscall.Close(fd)
		if err == nil {
			err = syscall.ESTALE
		}
		return err
	}
	f.fd = fd
	return nil
}

// readAt fills b from off.
func (f *srcFile) readAt(b []byte, off int64) error {
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

func (f *srcFile) close() {
	if f.fd >= 0 {
		syscall.Close(f.fd)
		f.fd = -1
	}
}
