//go:build unix

package rebuild

import "syscall"

// execve replaces the process with bin, keeping its pid and stdio.
func execve(bin string, argv, env []string) error { return syscall.Exec(bin, argv, env) }
