package unwind

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// ErrNotGo: the address is in no Go module this process's runtime knows
// (C code, another Go runtime's c-shared library, anonymous memory).
var ErrNotGo = errors.New("unwind: not Go code of this runtime")

// goImages are the Go modules other than Self (plugins) read so far, with
// why reading one failed. Go modules are never unloaded, so an image stays
// valid for the life of the process.
var goImages struct {
	sync.Mutex
	ims  []*Image
	errs map[string]error // by path@bias
}

// ImageAt returns the image of the Go module whose code holds pc: Self, or
// a plugin (plugin.Open) read from its own file, at the bias it is loaded
// with, its text start fixed by the runtime's entry of the function at pc.
// A plugin's image passes the same check SelfCheck runs on Self (a sample
// of its table against runtime.FuncForPC and its live text) before it is
// returned; a failure wraps ErrSelfCheck. pc outside every Go module of
// this runtime wraps ErrNotGo.
func ImageAt(pc uintptr) (*Image, error) {
	self, selfErr := Self()
	if selfErr == nil && self.holds(pc) {
		return self, nil
	}
	goImages.Lock()
	defer goImages.Unlock()
	for _, im := range goImages.ims {
		if im.holds(pc) {
			return im, nil
		}
	}
	m, ok := moduleAt(pc)
	rf := runtime.FuncForPC(pc)
	switch {
	case !ok && rf != nil:
		// Go code of this runtime in no object whose file can be read:
		// the file was deleted or replaced since it was loaded, and
		// nothing else describes the code.
		return nil, fmt.Errorf("%w: %#x (%s) is in no mapped object whose file can be read (deleted or replaced since it was loaded?)", ErrSelfCheck, pc, rf.Name())
	case !ok:
		return nil, fmt.Errorf("%w: %#x is in no mapped object", ErrNotGo, pc)
	case m.Main && selfErr != nil:
		return nil, selfErr
	case rf == nil:
		return nil, fmt.Errorf("%w: %#x in %s", ErrNotGo, pc, m.Path)
	}
	key := fmt.Sprintf("%s@%#x", m.Path, m.Bias)
	if err := goImages.errs[key]; err != nil {
		return nil, err
	}
	im, err := openModule(m.Path, m.Bias, rf.Entry())
	if err == nil {
		err = im.check([]uintptr{rf.Entry()})
	}
	if err == nil && !im.holds(pc) {
		err = fmt.Errorf("%w: %s: its load segments miss %#x", ErrSelfCheck, m.Path, pc)
	}
	if err != nil {
		if !errors.Is(err, ErrSelfCheck) {
			err = fmt.Errorf("%w: %v", ErrSelfCheck, err)
		}
		if goImages.errs == nil {
			goImages.errs = map[string]error{}
		}
		goImages.errs[key] = err
		return nil, err
	}
	goImages.ims = append(goImages.ims, im)
	return im, nil
}

// holds reports whether one of the image's load segments holds pc.
func (im *Image) holds(pc uintptr) bool {
	for _, r := range im.loads {
		if r.Start <= pc && pc < r.End {
			return true
		}
	}
	return false
}

// OpenAt is Open with every address moved by bias: a shared object, linked
// at 0, planned as if the loader had put it at bias.
func OpenAt(path string, bias uintptr) (*Image, error) {
	im, err := Open(path)
	if err != nil {
		return nil, err
	}
	im.rebase(bias)
	return im, nil
}

// Plugins returns the images of the Go modules of this runtime other than
// Self (the plugins loaded so far), in load order, and why any module that
// holds Go code of this runtime could not be read.
func Plugins() ([]*Image, []error) {
	mods, err := Modules()
	if err != nil {
		return nil, []error{err}
	}
	self, _ := Self()
	var ims []*Image
	var errs []error
	for _, m := range mods {
		if m.Main || self != nil && self.Path == m.Path && self.Bias == m.Bias {
			continue
		}
		pc, ok := goCodeIn(m)
		if !ok {
			continue // C code, data files, another runtime's library
		}
		im, err := ImageAt(pc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Path, err))
			continue
		}
		if !slices.Contains(ims, im) {
			ims = append(ims, im)
		}
	}
	return ims, errs
}

// goCodeIn returns an address in m that the runtime knows as Go code, if
// any: the runtime answers for every pc inside a module it registered, so
// probing a few addresses of each mapping tells Go modules from others.
func goCodeIn(m Module) (uintptr, bool) {
	for _, r := range m.Maps {
		for _, k := range []uintptr{1, 2, 3} {
			pc := r.Start + (r.End-r.Start)*k/4
			if rf := runtime.FuncForPC(pc); rf != nil {
				return rf.Entry(), true
			}
		}
	}
	return 0, false
}
