package registry

import (
	"reflect"
	"unsafe"

	"github.com/switchboard-go/switchboard/unwind"
)

// programFuncs maps function names to entries in the program's own binary,
// built on first need. reg.mu guards it.
var programFuncs map[string]uintptr

// programCopy returns fn, or, when fn's code is not in the program's
// binary but a function of the same name is, a func value of the
// program's copy. A Go plugin has its own copy of every function it
// references; when the program never made a func value of that function,
// the plugin's func value points at the plugin's copy, while the
// program's calls run the program's. reg.mu is held.
func programCopy[F any](fn F) F {
	if t := reflect.TypeFor[F](); t.Kind() != reflect.Func {
		return fn
	}
	fv := funcval(fn)
	if fv == nil {
		return fn
	}
	entry := *(*uintptr)(fv)
	im, err := unwind.Self()
	if err != nil {
		return fn
	}
	if _, ok := im.Lookup(entry); ok {
		return fn
	}
	if programFuncs == nil {
		programFuncs = map[string]uintptr{}
		for _, f := range im.Funcs() {
			programFuncs[f.Name] = f.Entry
		}
	}
	own, ok := programFuncs[unwind.Name(entry)]
	if !ok {
		return fn
	}
	code := new(uintptr)
	*code = own
	var out F
	*(*unsafe.Pointer)(unsafe.Pointer(&out)) = unsafe.Pointer(code)
	return out
}
