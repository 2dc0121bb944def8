//go:build !unix

package bench

import (
	"errors"
	"unsafe"
)

func writeText(unsafe.Pointer, []byte) error {
	return errors.New("bench: writing code needs mprotect (unix only)")
}
