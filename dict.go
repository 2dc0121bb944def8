package switchboard

import "unsafe"

// DropDictionary returns a funcval that runs impl, a func value with a
// generic instantiation's signature, when a call of the instantiation's
// shape function reaches it. The shape function takes the dictionary in
// integer argument register at: 0 (RAX) for a generic function, whose
// dictionary comes first; 1 (RBX) for a method whose receiver takes RAX,
// whose dictionary follows the receiver. The caller must only use it for
// those two positions and for signatures whose integer arguments take at
// most eight registers and that pass nothing on the stack (see
// dict_amd64.s); impl stays reachable through the returned funcval. It
// returns nil for another position.
func DropDictionary(impl unsafe.Pointer, at int) unsafe.Pointer {
	var code uintptr
	switch at {
	case 0:
		code = dropDictionaryPC()
	case 1:
		code = dropDictionaryRBXPC()
	default:
		return nil
	}
	return unsafe.Pointer(&dictFuncval{code: code, impl: impl})
}

// dictFuncval is a funcval: its code word, then what the code reads.
type dictFuncval struct {
	code uintptr
	impl unsafe.Pointer
}
