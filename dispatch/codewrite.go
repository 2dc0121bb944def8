//go:build linux && amd64

package dispatch

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// CheckCodeWrite probes whether this process may make code writable, as a
// patch must: it maps a read-execute page and asks for RWX, then unmaps
// it. The policies refuse that mprotect with EPERM (seccomp) or EACCES
// (MDWE), and the refusal is reported as ErrCodeWrite. Run it before
// planning: a planner refused relay pages would report no relay window.
func CheckCodeWrite() error {
	page, err := unix.Mmap(-1, 0, pageSize, protRX, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return codeWriteErr(fmt.Errorf("probe: mmap RX: %w", err), err)
	}
	defer unix.Munmap(page)
	if err := unix.Mprotect(page, protRWX); err != nil {
		return codeWriteErr(fmt.Errorf("probe: mprotect RWX: %w", err), err)
	}
	return nil
}

// codeWriteErr marks err as ErrCodeWrite when errno says a policy refused
// it, and returns it unchanged otherwise.
func codeWriteErr(err, errno error) error {
	if errors.Is(errno, unix.EPERM) || errors.Is(errno, unix.EACCES) {
		return fmt.Errorf("%w: %w", ErrCodeWrite, err)
	}
	return err
}
