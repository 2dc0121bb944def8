package registry

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/unwind"
)

// notInlined refuses a function the compiler inlined into some caller, or
// one the binary cannot prove was not: a patch would miss the inlined
// copies silently. The proofs, cheapest first (docs/design.md section
// 11): nothing in the binary was inlined (-gcflags=all=-l); the source
// marks it //go:noinline; every path calls out, so any inlined copy left
// code, and .gopclntab's inline trees (else DWARF) record none; DWARF shows
// no inlined copy and no other package can hold one (package main, an
// external test package). A copy another package inlined that left no
// instruction of its own is recorded nowhere in the binary.
func notInlined(im *unwind.Image, f unwind.Func, name string) error {
	some, err := im.InlinesAnything()
	if err != nil {
		return because(ErrInlined, "cannot tell whether it was inlined: %v", err)
	}
	if !some && allNoInline(im) {
		return nil
	}
	noinline := sync.OnceValue(func() bool { return im.NoInline(f.Entry) })
	// Whatever proves it, a copy the inline trees record refutes it: a
	// source other than what was compiled (-overlay, a stale file), DWARF
	// left out for a package (-dwarf=false).
	accept := func() error {
		if into, err := im.InlinedCopies(f.Entry); err == nil && len(into) > 0 {
			return inlinedInto(into)
		}
		return nil
	}
	if !im.InlineIndexed() && noinline() {
		// Proof without reading DWARF, which costs the first Set most.
		return accept()
	}
	calls, pgo := leavesCode(im, f)
	if calls {
		// Any inlined copy kept a call, which .gopclntab's inline trees
		// record: no DWARF needed.
		if into, err := im.InlinedCopies(f.Entry); err == nil {
			if len(into) > 0 {
				return inlinedInto(into)
			}
			return nil
		}
	}
	inlined, into, err := im.Inlined(name)
	switch {
	case errors.Is(err, unwind.ErrNoInlineProof):
		if noinline() {
			return accept()
		}
		return because(ErrInlined, "cannot prove %s was not inlined: this binary has no DWARF (go test strips it); mark it //go:noinline (Set reads the directive from its source), build with -gcflags=all=-l, or keep DWARF (go build, go test -c)", name)
	case err != nil:
		return because(ErrInlined, "cannot tell whether it was inlined: %v", err)
	case !inlined:
		why := callableElsewhere(name)
		if why == "" && dwarfOff(im) {
			why = "the binary was built with -dwarf=false for some packages, and DWARF's silence proves nothing there"
		}
		if why == "" || noinline() || calls {
			return accept()
		}
		if pgo != "" {
			why += "; " + pgo
		}
		return because(ErrInlined, "cannot prove %s was not inlined: %s, and a copy inlined into another package that left no instruction of its own is recorded nowhere in the binary (not in DWARF, not in .gopclntab); mark it //go:noinline (Set reads the directive from its source) or build with -gcflags=all=-l", name, why)
	case len(into) == 0:
		return because(ErrInlined, "into callers the binary does not name (the inlined body left no code of its own); mark it //go:noinline or build with -gcflags=all=-l")
	}
	return inlinedInto(into)
}

// dwarfOff reports whether the build settings turn DWARF off for some
// package (-gcflags=...-dwarf=false): its functions are then missing from
// DWARF, which looks like "never inlined".
func dwarfOff(im *unwind.Image) bool {
	v, ok := im.BuildSetting("-gcflags")
	return !ok && !im.BuildSettings() || strings.Contains(v, "dwarf=false")
}

// allNoInline reports whether the build settings say every package was
// compiled with -l: the last -gcflags, the one recorded, applies to all.
// No inline tree anywhere is not enough by itself: a package compiled
// without -l may have inlined only copies that left no instruction.
func allNoInline(im *unwind.Image) bool {
	v, ok := im.BuildSetting("-gcflags")
	flags, all := strings.CutPrefix(strings.Trim(v, `"'`), "all=")
	return ok && all && slices.Contains(strings.Fields(strings.Trim(flags, `"'`)), "-l")
}

// inlinedInto refuses a function inlined into the callers into.
func inlinedInto(into []string) error {
	more := ""
	if len(into) > 3 {
		more = " and " + strconv.Itoa(len(into)-3) + " more"
		into = into[:3]
	}
	return because(ErrInlined, "into %s%s; mark it //go:noinline or build with -gcflags=all=-l", strings.Join(into, ", "), more)
}

// callableElsewhere says why code in another package may hold a copy of
// the Go function name, or "". Package main and an external test package
// (pkg_test) are imported by no other package, so all their code is
// compiled with them. Any other package's function may be compiled into
// an importer: an exported one by name; an unexported one through the
// package's generic code, which each user instantiates (the linker may
// then drop every instantiation, leaving no trace of the package's
// generics), or, for a method, through the wrapper of a promoted method,
// which the embedding package generates.
func callableElsewhere(name string) string {
	sk := skeleton(name)
	pkg := pkgPath(sk)
	switch {
	case pkg == "main" || strings.HasSuffix(pkg, "_test") || pkg == sk:
		return ""
	case exported(calledAs(strings.ReplaceAll(sk[len(pkg)+1:], "[]", ""))):
		return calledAs(strings.ReplaceAll(sk[len(pkg)+1:], "[]", "")) + " is exported"
	}
	return "its package " + pkg + " is not main, and other packages compile its unexported code into theirs too (instantiating its generic code, wrapping promoted methods)"
}

// calledAs is the identifier other code calls a function by, from its name
// past the package: m for (*T).m and T.m, f for f, and the enclosing
// function's for a function literal (f.func1, (*T).m.func2).
func calledAs(rest string) string {
	parts := strings.Split(rest, ".")
	switch {
	case strings.HasPrefix(parts[0], "("):
		if len(parts) > 1 {
			return parts[1]
		}
	case len(parts) > 1 && parts[1] != "" && !unwind.LiteralName(parts[1]):
		return parts[1] // T.m, or T.m.func1
	}
	return parts[0]
}

func exported(id string) bool {
	r, _ := utf8.DecodeRuneInString(id)
	return unicode.IsUpper(r)
}

// leavesCode reports whether any copy of f inlined into a caller would keep
// an instruction of its own, which DWARF and .gopclntab then record: every
// path through f's body to a return calls a Go function outside the
// runtime. Calls into the runtime prove nothing: some are the sanitizers'
// hooks, the stack check or memory moves that a caller's copy may lose. A
// profile-guided build, one with GOEXPERIMENT=newinliner (or one whose
// settings cannot be read) proves nothing either: each may inline f's
// callee into one copy and not another; why says so.
func leavesCode(im *unwind.Image, f unwind.Func) (calls bool, why string) {
	pgo, ok := im.BuildSetting("-pgo")
	gcflags, _ := im.BuildSetting("-gcflags")
	experiments, _ := im.BuildSetting("GOEXPERIMENT")
	switch {
	case !ok && !im.BuildSettings():
		return false, "the binary's build settings cannot be read, so a profile-guided build cannot be ruled out"
	case pgo != "" && pgo != "off" || strings.Contains(gcflags, "pgoprofile"):
		return false, "the binary was built with a profile (PGO), under which a copy may inline a call its original makes"
	case strings.Contains(experiments, "newinliner"):
		return false, "the binary was built with GOEXPERIMENT=newinliner, which scores the calls inside an inlined copy anew"
	}
	code, err := im.Bytes(f)
	if err != nil {
		return false, ""
	}
	return dispatch.EveryPathCalls(code[:min(f.Size, len(code))], f.Entry, func(pc uintptr) dispatch.Callee {
		g, ok := im.Lookup(pc)
		switch {
		case !ok || g.Entry != pc || !g.Go:
			return dispatch.Passes
		case noReturn(g.Name):
			return dispatch.NoReturn
		case pkgPath(g.Name) == "runtime" || strings.HasPrefix(g.Name, "internal/runtime/"):
			return dispatch.Passes
		}
		return dispatch.Proves
	}), ""
}

// noReturn reports whether the runtime function name never returns: the
// panics the compiler calls for failed checks, and throw.
func noReturn(name string) bool {
	rest, ok := strings.CutPrefix(name, "runtime.")
	return ok && (strings.HasPrefix(rest, "panic") || strings.HasPrefix(rest, "goPanic") || rest == "throw" || rest == "gopanic" || rest == "fatal")
}
