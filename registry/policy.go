package registry

import (
	"regexp"
	"strings"
)

// protectedPkgs are packages whose functions Set refuses: the runtime and
// what it is built on, reflect, and everything a Set itself runs (locks,
// syscalls, the decoder and Switchboard's own packages), which a patch could
// otherwise break half-way through its own write.
var protectedPkgs = []string{
	"runtime", "reflect", "sync", "sync/atomic", "syscall", "unsafe",
	"golang.org/x/sys/unix", "golang.org/x/arch/x86/x86asm", "github.com/ianlancetaylor/demangle",
	"github.com/switchboard-go/switchboard",
	"github.com/switchboard-go/switchboard/dispatch",
	"github.com/switchboard-go/switchboard/registry",
	"github.com/switchboard-go/switchboard/unwind",
}

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

// protected reports why a function may not be patched, or "".
func protected(name string) string {
	pkg := pkgPath(name)
	switch {
	case strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "vendor/"):
		return "package " + pkg + " is internal to the standard library"
	case strings.HasPrefix(pkg, "runtime/"):
		return "package " + pkg + " is part of the runtime"
	case !strings.Contains(name, "."):
		return "it is not Go code"
	}
	for _, p := range protectedPkgs {
		if pkg == p {
			return "package " + pkg + " is protected"
		}
	}
	return ""
}

var (
	closureName = regexp.MustCompile(`(\.func\d+(\.\d+)*|\.gowrap\d+|\.deferwrap\d+|-range\d+(\.\d+)*)$`)
	genericName = regexp.MustCompile(`\[.*\]`)
)

// kind classifies fn by the name the compiler gave its code.
func kind(name string) error {
	switch {
	case strings.HasSuffix(name, "-fm"):
		return ErrMethodValue
	case closureName.MatchString(name):
		return ErrClosure
	case genericName.MatchString(name):
		return ErrGeneric
	}
	return nil
}
