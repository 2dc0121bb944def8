//go:build unix

package hotfix

import (
	"io/fs"
	"syscall"
)

// owner returns the file's owner.
func owner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
