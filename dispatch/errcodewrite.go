package dispatch

import "errors"

// ErrCodeWrite: this process may not make code writable. A
// write-xor-execute policy is in force: systemd's MemoryDenyWriteExecute,
// prctl(PR_SET_MDWE) (Linux 6.3+), or another seccomp filter on mprotect.
// Nothing is written.
var ErrCodeWrite = errors.New("code cannot be written here: a W^X policy refuses mprotect RWX (systemd MemoryDenyWriteExecute, prctl PR_SET_MDWE, seccomp)")
