package registry

import (
	"fmt"
	"reflect"
	"runtime"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/unwind"
)

// The checks supported runs, replaced by tests to inject a failure.
var (
	selfCheck = unwind.SelfCheck
	writable  = dispatch.Writable
)

// supported returns why this process cannot patch, or nil. Switchboard
// fails closed: off linux/amd64, when the start-up self-check finds that
// the Go function table of this binary does not read as the runtime reads
// it (a toolchain whose layout this code does not know), or when no
// membarrier SYNC_CORE proves that a code write reaches every core, every
// Set, Reset and Original is refused before anything is touched.
func supported() error {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return because(ErrUnsupported, "%s/%s: Switchboard patches linux/amd64 programs only", runtime.GOOS, runtime.GOARCH)
	}
	if err := selfCheck(); err != nil {
		return because(ErrUnsupported, "%v", err)
	}
	if err := writable(); err != nil {
		return because(ErrUnsupported, "%v", err)
	}
	return nil
}

// refuseUnsupported is supported as the *Error of op on fn.
func refuseUnsupported[F any](op string, fn F) error {
	return unsupportedError(op, fn, supported())
}

// refuseTrees refuses a goroutine-tree scope where the profiler-label word
// could not be verified, before anything else is looked at.
func refuseTrees[F any](op string, fn F) error {
	_, err := labelOffset()
	return unsupportedError(op, fn, err)
}

func unsupportedError[F any](op string, fn F, err error) error {
	if err == nil {
		return nil
	}
	name := fmt.Sprintf("<%T>", fn)
	if v := reflect.ValueOf(fn); v.Kind() == reflect.Func && !v.IsNil() {
		if f := runtime.FuncForPC(v.Pointer()); f != nil {
			name = f.Name()
		}
	}
	return &Error{Op: op, Func: name, Err: err}
}
