//go:build linux

package unwind

import (
	"syscall"
	"time"
)

// srcFile is a source file NoInline reads. It is opened with one path
// lookup and read with pread: os.Stat then os.Open looked the path up
// twice and offered the file to the poller, a third of a later first Set's
// reading.
type srcFile struct {
	fd   int
	size int64
	mod  time.Time
	reg  bool // a regular file
}

func openSrc(path string) (srcFile, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return srcFile{}, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return srcFile{}, err
	}
	return srcFile{fd: fd, size: st.Size, mod: time.Unix(st.Mtim.Unix()), reg: st.Mode&syscall.S_IFMT == syscall.S_IFREG}, nil
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

func (f srcFile) close() { syscall.Close(f.fd) }
