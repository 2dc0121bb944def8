package switchboard

import "unsafe"

// DropDictionary returns a funcval that runs impl, a func value with a
// generic instantiation's signature, when a call of the instantiation's
// shape function reaches it: the shape function takes the dictionary
// first, in RAX, and the arguments after it. The caller must only use it
// for signatures whose integer arguments take at most eight registers and
// that pass nothing on the stack (see dict_amd64.s); impl stays reachable
// through the returned funcval.
func DropDictionary(impl unsafe.Pointer) unsafe.Pointer {
	return unsafe.Pointer(&dictFuncval{code: dropDictionaryPC(), impl: impl})
}

// dictFuncval is a funcval: its code word, then what the code reads.
type dictFuncval struct {
	code uintptr
	impl unsafe.Pointer
}
