package switchboard

import "unsafe"

// Implemented in asm_amd64.s, cdispatch_amd64.s, g_amd64.s and dict_amd64.s.
func currentG() unsafe.Pointer
func dropDictionaryPC() uintptr
func dropDictionary()
func dropDictionaryRBXPC() uintptr
func dropDictionaryRBX()
func cdispatcherPC() uintptr
func dispatcherPC() uintptr
func slotDispatcherPC() uintptr
func callDispatcherPC() uintptr
func nilFaultPC() uintptr
func nilFault()
func dispatcher()
func slotDispatcher()
func callDispatcher()

// originalRet is the return address inside originalCall, after its call of
// the trampoline: rule 1 of the dispatcher compares 8(SP) with it. init
// learns it by calling captureReturn through originalCall.
var originalRet uintptr

func init() {
	fv := &[3]uintptr{originalCallPC(), captureReturnPC(), 0}
	var probe func()
	*(*unsafe.Pointer)(unsafe.Pointer(&probe)) = unsafe.Pointer(fv)
	probe()
	if originalRet == 0 {
		panic("switchboard: originalCall did not call its target")
	}
}

func originalCallPC() uintptr
func captureReturnPC() uintptr
func gWord(off uintptr) uintptr
func originalCall()
func captureReturn()

// The checks of a route's table entries (asm_amd64.s), reached only by
// the dispatcher's jumps.
func dispatcherRAX()
func dispatcherRAXGlobal()
func dispatcherRAXOriginal()
func dispatcherRBX()
func dispatcherRBXGlobal()
func dispatcherRBXOriginal()
func dispatcherRDX()
func dispatcherRDXGlobal()
func dispatcherRDXOriginal()
func dispatcherLabel()
func dispatcherLabelGlobal()
func dispatcherLabelOriginal()
func dispatcherAll()
func dispatcherAllGlobal()
func dispatcherAllOriginal()
func dispatcherDropRAX()
func dispatcherDropRAXGlobal()
func dispatcherDropRAXOriginal()
func dispatcherDropRBX()
func dispatcherDropRBXGlobal()
func dispatcherDropRBXOriginal()
func dispatcherGlobal()
func dispatcherOriginal()

// checkPCs returns the code of each kind of check, by kind.
func checkPCs() (pcs [numChecks]uintptr) {
	fillCheckPCs(&pcs)
	return pcs
}

func fillCheckPCs(pcs *[numChecks]uintptr)
