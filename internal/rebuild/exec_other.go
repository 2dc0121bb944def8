//go:build !unix

package rebuild

import "errors"

// execve is not available here; Switchboard patches nothing off linux/amd64.
func execve(string, []string, []string) error { return errors.ErrUnsupported }
