package switchboard

import "unsafe"

// CurrentG returns the running goroutine's g, the runtime's goroutine
// record, which never moves or is freed while the goroutine lives. Its
// layout is the runtime's: callers may only read words of it whose offset
// they have verified on the running toolchain (see SetLabelOffset).
func CurrentG() unsafe.Pointer { return currentG() }
