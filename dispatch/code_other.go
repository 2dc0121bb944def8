//go:build !(linux && amd64)

package dispatch

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/switchboard-go/switchboard"
)

// Off linux/amd64 nothing writes code: every entry point that would fails
// with ErrUnsupported, so that programs importing Switchboard still build.

// ErrCodeChanged: the bytes to be replaced are not the ones expected.
var ErrCodeChanged = errors.New("code bytes changed underneath")

var writeMu sync.Mutex

var errPlatform = fmt.Errorf("%w: %s/%s (linux/amd64 only)", ErrUnsupported, runtime.GOOS, runtime.GOARCH)

// Writable always fails here.
func Writable() error { return errPlatform }

// SyncCores always fails here.
func SyncCores() error { return errPlatform }

// SyncMethod names how SyncCores serializes cores: not at all here.
func SyncMethod() string { return "none (" + errPlatform.Error() + ")" }

func swapQuad(unsafe.Pointer, [8]byte, [8]byte) (bool, error) { return false, errPlatform }

func writeSite(*relayPage, uintptr, []byte) error { return errPlatform }

// Process is the live address space of this process; unsupported here.
type Process struct{}

// Busy fails here.
func (Process) Busy() ([]Range, error) { return nil, errPlatform }

// Reserve fails here.
func (Process) Reserve(uintptr, int) (unsafe.Pointer, error) { return nil, errPlatform }

// Install fails here.
func (p *Patch) Install(*switchboard.Route) error { return errPlatform }

// Apply fails here.
func (p *Patch) Apply(unsafe.Pointer, [8]byte) (bool, error) { return false, errPlatform }

// Restore fails here.
func (p *Patch) Restore(unsafe.Pointer) (bool, error) { return false, errPlatform }

func (p *Patch) swap(unsafe.Pointer, [8]byte, [8]byte) (bool, error) { return false, errPlatform }

func refuseErr(p *Patch, r Reason, err error) error {
	return &RefusalError{Func: p.Name, Entry: p.Entry, Reason: r, Detail: err.Error(), Err: ErrUnsupported}
}

// CheckCodeWrite fails here: no code is written off linux/amd64.
func CheckCodeWrite() error { return errPlatform }

// SwapQuads fails here.
func SwapQuads([]QuadSwap) (bool, error) { return false, errPlatform }

// InstallAll fails here.
func InstallAll([]*Patch, []*switchboard.Route) error { return errPlatform }

// wideOK: no octoword stores off linux/amd64 (nothing is written there).
func wideOK() bool { return false }
