//go:build !linux

package unwind

import (
	"io"
	"os"
	"time"
)

// srcFile is a source file NoInline reads (see srcfile_linux.go).
type srcFile struct {
	f    *os.File
	size int64
	mod  time.Time
	reg  bool
}

func openSrc(path string) (srcFile, error) {
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return srcFile{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return srcFile{}, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return srcFile{}, err
	}
	return srcFile{f: f, size: st.Size(), mod: st.ModTime(), reg: true}, nil
}

func (f srcFile) readAt(b []byte, off int64) error {
	_, err := f.f.ReadAt(b, off)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (f srcFile) close() {
	if f.reg {
		f.f.Close()
	}
}
