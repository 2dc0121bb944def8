package dispatch

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// decoder is the instruction decoder, replaced by tests.
var decoder = x86asm.Decode

// decode decodes one 64-bit instruction. Every decode of this package goes
// through it: x86asm has panicked on some inputs in the past, and a panic
// here would take down the program being patched. A panic becomes an error
// wrapping ErrUnpatchable, so the function is refused and nothing changes.
func decode(b []byte) (in x86asm.Inst, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = x86asm.Inst{}, fmt.Errorf("%w: x86asm panicked decoding % x: %v", ErrUnpatchable, head(b, maxInstLen), r)
		}
	}()
	return decoder(b, 64)
}
