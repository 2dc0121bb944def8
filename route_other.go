//go:build !amd64

package switchboard

import "unsafe"

// Off amd64 there is no dispatcher: package registry refuses every patch
// with ErrUnsupported, so nothing reaches these. The addresses are zero.

func dispatcherPC() uintptr     { return 0 }
func slotDispatcherPC() uintptr { return 0 }
func callDispatcherPC() uintptr { return 0 }
func cdispatcherPC() uintptr    { return 0 }
func nilFaultPC() uintptr       { return 0 }
func originalCallPC() uintptr   { return 0 }
func captureReturnPC() uintptr  { return 0 }
func gWord(off uintptr) uintptr { return 0 }

// originalRet is the return address inside the Original stub: none here.
var originalRet uintptr

func currentG() unsafe.Pointer     { return nil }
func dropDictionaryPC() uintptr    { return 0 }
func dropDictionaryRBXPC() uintptr { return 0 }

func checkPCs() (pcs [numChecks]uintptr) { return pcs }
