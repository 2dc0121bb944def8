//go:build !linux

package crowd

import "errors"

// Low fails here: Switchboard patches on linux/amd64 only.
func Low(top uintptr) (release func(), err error) {
	return nil, errors.New("crowd: linux only")
}
