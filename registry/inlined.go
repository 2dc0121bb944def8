package registry

import (
	"errors"
	"strconv"
	"strings"

	"github.com/switchboard-go/switchboard/unwind"
)

// notInlined refuses a function the compiler inlined into some caller, or
// one the binary cannot prove was not: a patch would miss the inlined
// copies silently.
func notInlined(im *unwind.Image, name string) error {
	inlined, into, err := im.Inlined(name)
	switch {
	case errors.Is(err, unwind.ErrNoInlineProof):
		return because(ErrInlined, "cannot prove %s was not inlined: this binary has no DWARF (go test strips it); build with -gcflags=all=-l, or keep DWARF (go build, go test -c)", name)
	case err != nil:
		return because(ErrInlined, "cannot tell whether it was inlined: %v", err)
	case !inlined:
		return nil
	case len(into) == 0:
		return because(ErrInlined, "into callers the binary does not name (the inlined body left no code of its own); mark it //go:noinline or build with -gcflags=all=-l")
	}
	more := ""
	if len(into) > 3 {
		more = " and " + strconv.Itoa(len(into)-3) + " more"
		into = into[:3]
	}
	return because(ErrInlined, "into %s%s; mark it //go:noinline or build with -gcflags=all=-l", strings.Join(into, ", "), more)
}
