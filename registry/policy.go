package registry

import (
	"slices"
	"strings"

	"github.com/switchboard-go/switchboard/unwind"
)

// isDependency reports whether pkg is in Set's own dependency closure
// (dependencies, generated), whose functions Set refuses: the runtime and what it is built on,
// and everything Set, Reset, Original and List run (formatting, locks,
// syscalls, ELF and DWARF reading, decompression, the decoder, Switchboard
// itself). A patch there could break a write half-way, or run user code
// while the registry's lock is held. Whole trees are protected by prefix
// too (internal/, vendor/, runtime/), so toolchain versions that add
// internal packages need no regeneration.
//
//go:generate go run gendeps.go
func isDependency(pkg string) bool {
	_, ok := slices.BinarySearch(dependencies, pkg)
	return ok && !slices.Contains(unlockedDeps, pkg)
}

// unlockedDeps are dependencies that Set, Reset, Original and List never
// call while holding the registry's lock (they read the clock before
// taking it), so a patch of them cannot reenter or deadlock the registry.
// Tests fake the clock more than anything else.
// TestClockNeverReadUnderTheLock checks the claim.
var unlockedDeps = []string{"time"}

// pkgPath extracts the import path from a Go symbol name:
// "example.com/a/b.(*T).M" -> "example.com/a/b".
func pkgPath(name string) string {
	slash := strings.LastIndexByte(name, '/')
	dot := strings.IndexByte(name[slash+1:], '.')
	if dot < 0 {
		return name
	}
	return name[:slash+1+dot]
}

// protected reports why a function may not be patched, or "". Where its
// code comes from decides, not only its name: time.Sleep's body is the
// runtime's (linkname), and protected as such.
func protected(im *unwind.Image, name string, entry uintptr) string {
	if pkg, ok := im.StdPackage(entry); ok {
		if why := protectedPkg(pkg); why != "" {
			return "its code is in " + pkg + ": " + why
		}
	}
	if !strings.Contains(name, ".") {
		return "it is not Go code"
	}
	return protectedPkg(pkgPath(name))
}

func protectedPkg(pkg string) string {
	switch {
	case strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "vendor/"):
		return "package " + pkg + " is internal to the standard library"
	case pkg == "runtime" || strings.HasPrefix(pkg, "runtime/"):
		return "package " + pkg + " is part of the runtime"
	case isDependency(pkg):
		return "package " + pkg + " is one Switchboard itself runs"
	}
	return ""
}

// names lists a binary's functions by name prefix (*unwind.Image).
type names interface {
	FuncNames(prefix string) []string
}

// kind classifies fn by the name the compiler gave its code, asking bin
// about the other functions of the binary when the name is ambiguous.
func kind(name string, bin names) error {
	switch {
	case strings.HasSuffix(name, "-fm"):
		return ErrMethodValue
	case isClosure(name, bin):
		return ErrClosure
	case strings.Contains(name, "["):
		return ErrGeneric
	}
	return nil
}

// isClosure recognizes the compiler's names for function literals and the
// wrappers of go and defer statements: outer.func1, outer.func1.2,
// outer.gowrap1, outer.deferwrap1, outer-range1. A method may be named
// like one (pkg.(*T).func1, pkg.T.func1): a closure's outer function is
// in the binary, or is a method or closure itself; a method's receiver
// type is no function, and the binary holds other methods of it.
func isClosure(name string, bin names) bool {
	outer, sep, ok := closureOuter(name)
	if !ok {
		return false
	}
	pkg := pkgPath(outer)
	rest := outer[len(pkg)+1:]
	switch {
	case sep == '-':
		return true // range-over-func bodies: no method is named so
	case strings.HasSuffix(rest, ")"):
		return false // pkg.(*T).func1: a method of *T
	case strings.ContainsAny(rest, ".-"):
		return true // pkg.F.G.func1, pkg.glob..func1: no type has such a name
	case bin == nil:
		return true
	}
	// outer is pkg.X: function X, or type X with a value method func1.
	for _, n := range bin.FuncNames(outer) {
		if n == outer {
			return true
		}
		if n != name && strings.HasPrefix(n, outer+".") {
			if _, _, closure := closureOuter(n); !closure {
				return false // another method of type X
			}
		}
	}
	if len(bin.FuncNames(pkg+".(*"+rest+").")) > 0 {
		return false // methods of *X
	}
	return true // cannot tell: refusing is the safe side
}

// closureOuter matches a closure's name and returns its outer function's
// name and the separator before the closure's own part ('.' or '-').
func closureOuter(name string) (outer string, sep byte, ok bool) {
	// Strip the nested-literal suffixes: .2, .3.1, ...
	for {
		i := strings.LastIndexByte(name, '.')
		if i < 0 || !allDigits(name[i+1:]) {
			break
		}
		name = name[:i]
	}
	i := strings.LastIndexAny(name, ".-")
	if i <= len(pkgPath(name)) {
		return "", 0, false // a top-level function named like one: pkg.func1
	}
	last := name[i+1:]
	for _, prefix := range []string{"func", "gowrap", "deferwrap", "range"} {
		if strings.HasPrefix(last, prefix) && allDigits(last[len(prefix):]) {
			if prefix == "range" && name[i] != '-' {
				return "", 0, false
			}
			return name[:i], name[i], true
		}
	}
	return "", 0, false
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
