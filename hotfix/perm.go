package hotfix

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PermError says which file or directory made a plugin untrusted. It
// wraps ErrInsecure.
type PermError struct {
	Path string      // the offending file or directory
	Mode fs.FileMode // its mode
	UID  uint32      // its owner
	Why  string
}

func (e *PermError) Error() string {
	return fmt.Sprintf("%v: %s (mode %v, owner %d): %s", ErrInsecure, e.Path, e.Mode, e.UID, e.Why)
}

func (e *PermError) Unwrap() error { return ErrInsecure }

// checkTrusted checks path (absolute, symlinks resolved) and every
// directory above it: owned by this process's user or root, and not
// writable by group or others. A directory writable by others passes only
// with the sticky bit set: then nobody else can rename or remove the
// entries we own in it.
func checkTrusted(path string) error {
	me := uint32(os.Geteuid())
	for p, file := path, true; ; p, file = filepath.Dir(p), false {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrOpen, err)
		}
		uid, ok := owner(fi)
		if !ok {
			return &PermError{Path: p, Mode: fi.Mode(), Why: "no owner information"}
		}
		bad := func(why string) error { return &PermError{Path: p, Mode: fi.Mode(), UID: uid, Why: why} }
		switch {
		case uid != me && uid != 0:
			return bad(fmt.Sprintf("owned by another user (this process runs as %d)", me))
		case file && !fi.Mode().IsRegular():
			return bad("not a regular file")
		case file && fi.Mode().Perm()&0o022 != 0:
			return bad("writable by group or others")
		case !file && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return bad("directory writable by group or others, without the sticky bit")
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}
