package registry

import (
	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/dispatch"
)

// InjectUnsupported replaces the start-up checks with ones returning
// these errors (nil keeps the real check) until restore is called.
func InjectUnsupported(selfCheckErr, writableErr error) (restore func()) {
	oldSelf, oldWritable := selfCheck, writable
	if selfCheckErr != nil {
		selfCheck = func() error { return selfCheckErr }
	}
	if writableErr != nil {
		writable = func() error { return writableErr }
	}
	return func() { selfCheck, writable = oldSelf, oldWritable }
}

// Dependencies exposes the generated dependency closure to the tests.
var Dependencies = dependencies

// FailInstall makes every relay site install fail with err until the
// returned function is called.
func FailInstall(err error) (restore func()) {
	saved := install
	install = func(*dispatch.Patch, *switchboard.Route) error { return err }
	return func() { install = saved }
}

// Locked reports whether the registry's lock is held, without blocking.
func Locked() bool {
	if reg.mu.TryLock() {
		reg.mu.Unlock()
		return false
	}
	return true
}
