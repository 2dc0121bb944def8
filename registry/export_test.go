package registry

import (
	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/dispatch"
)

// Dependencies exposes the generated dependency closure to the tests.
var Dependencies = dependencies

// FailInstall makes every relay site install fail with err until the
// returned function is called.
func FailInstall(err error) (restore func()) {
	saved := install
	install = func(*dispatch.Patch, *switchboard.Route) error { return err }
	return func() { install = saved }
}
