package hotfix

import (
	"errors"
	"fmt"
	"path/filepath"
	"plugin"
	"strings"

	"github.com/switchboard-go/switchboard/registry"
)

// Sentinels, for errors.Is. Every error from Load is an *Error wrapping
// one of them; a refused Commit also wraps the registry's sentinels.
var (
	// ErrInsecure: the plugin file, or a directory above it, could have
	// been written by another user.
	ErrInsecure = errors.New("plugin file is writable by other users")
	// ErrIncompatible: the plugin was built with another toolchain, other
	// build flags or other versions of the packages it shares with this
	// program (plugin.Open's own error says which).
	ErrIncompatible = errors.New("plugin was built with a different toolchain or package versions")
	// ErrOpen: the plugin could not be opened for another reason (not a
	// plugin, missing file).
	ErrOpen = errors.New("cannot open plugin")
	// ErrNoPatches: the plugin has no exported func Patches(*registry.Batch) error.
	ErrNoPatches = errors.New("plugin exports no func Patches(*registry.Batch) error")
	// ErrPatches: the plugin's Patches returned an error (a Stage refusal,
	// usually); nothing was committed.
	ErrPatches = errors.New("the plugin's Patches failed")
	// ErrCommit: the batch the plugin staged was refused; nothing changed.
	ErrCommit = errors.New("committing the plugin's patches failed")
)

// Error is the error of a refused Load or Undo.
type Error struct {
	Op   string // "Load" or "Undo"
	Path string // the plugin file
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("hotfix: %s %s: %v", e.Op, e.Path, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// A Fix is a loaded plugin whose patches are in force.
type Fix struct {
	Path    string // the plugin file, absolute
	Patches int    // how many functions its batch staged
	batch   *registry.Batch
}

// Load opens the plugin at path, checks its permissions, calls its Patches
// with a new batch and commits the batch. On any error nothing has
// changed. Loading a file again runs its Patches again (Go cannot unload a
// plugin; its code stays mapped).
func Load(path string) (*Fix, error) {
	fail := func(err error) (*Fix, error) { return nil, &Error{Op: "Load", Path: path, Err: err} }
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrOpen, err))
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrOpen, err))
	}
	if err := checkTrusted(real); err != nil {
		return fail(err)
	}
	if err := checkBuild(real); err != nil {
		return fail(err)
	}
	p, err := plugin.Open(real)
	if err != nil {
		if incompatible(err) {
			return fail(fmt.Errorf("%w: %v", ErrIncompatible, err))
		}
		return fail(fmt.Errorf("%w: %v", ErrOpen, err))
	}
	sym, err := p.Lookup("Patches")
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrNoPatches, err))
	}
	patches, ok := sym.(func(*registry.Batch) error)
	if !ok {
		return fail(fmt.Errorf("%w: Patches is a %T", ErrNoPatches, sym))
	}
	b := registry.NewBatch()
	if err := patches(b); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrPatches, err))
	}
	if err := b.Commit(); err != nil {
		if errors.Is(err, registry.ErrUnfinished) {
			// The code is in force: the fix must be returned to be undone.
			return &Fix{Path: real, Patches: b.Len(), batch: b}, &Error{Op: "Load", Path: path, Err: err}
		}
		return fail(fmt.Errorf("%w: %w", ErrCommit, err))
	}
	return &Fix{Path: real, Patches: b.Len(), batch: b}, nil
}

// Undo reverts the fix's patches: every function is back in the state it
// had before Load committed them.
func (f *Fix) Undo() error {
	if err := f.batch.Undo(); err != nil {
		return &Error{Op: "Undo", Path: f.Path, Err: err}
	}
	return nil
}

// incompatible tells plugin.Open's version errors from other failures: a
// package hash that differs, or a symbol the program does not have (the
// dynamic linker's error for a plugin of another toolchain).
func incompatible(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "different version of package") || strings.Contains(msg, "undefined symbol")
}
