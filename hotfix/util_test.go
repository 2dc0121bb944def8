package hotfix_test

import (
	"runtime"
	"unsafe"
)

func ptrOf[F any](p *F) unsafe.Pointer { return unsafe.Pointer(p) }

// ptrFromPC turns a code address into a pointer to read it.
func ptrFromPC(pc uintptr) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), pc) }

func runtimeVersion() string { return runtime.Version() }
