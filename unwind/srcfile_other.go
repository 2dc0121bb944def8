//go:build !linux

package unwind

import (
	"errors"
	"io"
	"os"
	"time"
)

// srcFile is a source file NoInline reads (see srcfile_linux.go).
type srcFile struct {
	path string
	fi   os.FileInfo
	f    *os.File
	size int64
	mod  time.Time
	reg  bool
}

func statSrc(path string) (srcFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return srcFile{path: path}, err
	}
	return srcFile{path: path, fi: fi, size: fi.Size(), mod: fi.ModTime(), reg: fi.Mode().IsRegular()}, nil
}

func (f *srcFile) open() error {
	if f.f != nil {
		return nil
	}
	if !f.reg {
		return errors.New("not a regular file")
	}
	file, err := os.Open(f.path)
	if err != nil {
		return err
	}
	fi, err := file.Stat()
	if err != nil || !os.SameFile(fi, f.fi) || fi.Size() != f.size || !fi.ModTime().Equal(f.mod) {
		file.Close()
		if err == nil {
			err = errors.New("the file changed since it was stat'ed")
		}
		return err
	}
	f.f = file
	return nil
}

func (f *srcFile) readAt(b []byte, off int64) error {
	_, err := f.f.ReadAt(b, off)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (f *srcFile) close() {
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
}
