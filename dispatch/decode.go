package dispatch

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// decoder is the instruction decoder, replaced by tests.
var decoder = x86asm.Decode

// decode decodes one 64-bit instruction, and endbr64 as a 4-byte NOP
// (x86asm does not know it). Every decode of this package goes
// through it: x86asm has panicked on some inputs in the past, and a panic
// here would take down the program being patched. A panic becomes an error
// wrapping ErrUnpatchable, so the function is refused and nothing changes.
func decode(b []byte) (in x86asm.Inst, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = x86asm.Inst{}, fmt.Errorf("%w: x86asm panicked decoding % x: %v", ErrUnpatchable, head(b, maxInstLen), r)
		}
	}()
	if len(b) >= 4 && string(b[:4]) == endbr64 {
		return x86asm.Inst{Op: x86asm.NOP, Len: 4}, nil
	}
	return decoder(b, 64)
}

// Decode is decode for other packages that read code (registry decodes
// generic wrappers): a decoder panic is an error, never a crash.
func Decode(b []byte) (x86asm.Inst, error) { return decode(b) }
