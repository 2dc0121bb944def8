// Command policyprog is the oracle for `switchboard scan`'s registry
// field: it calls the real registry.Set (then Reset) on functions of each
// kind registry's policy tells apart, each with an impl of its type, and
// prints what Set said, by entry address, as one JSON array.
// TestScanRegistryAgreesWithSet scans this program's binary and compares.
// Build it with go build (DWARF kept): without DWARF every inlinable
// function is refused for want of proof.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// plain is called only through func values: no caller inlines it.
func plain(x int) int { return x*7 + 1 }

// small is inlined into callSmall.
func small(x int) int { return x * 3 }

//go:noinline
func callSmall(x int) int { return small(x) + 1 }

//go:noinline
func noInline(x int) int { return x * 5 }

type T struct{ v int }

//go:noinline
func (t *T) Method(x int) int { return t.v + x }

// Value has a value receiver: (*T).Value is the compiler's wrapper.
//
//go:noinline
func (t T) Value() int { return t.v }

//go:noinline
func Pick[E any](a, b E, first bool) E {
	if first {
		return a
	}
	return b
}

// verdict is one line of the output.
type verdict struct {
	Name  string `json:"name"`
	Entry string `json:"entry"`
	// Sentinel is "" when Set succeeded, else the short name of the
	// sentinel it returned (the names scan uses).
	Sentinel string `json:"sentinel"`
	Err      string `json:"err"`
}

var sentinels = []struct {
	name string
	err  error
}{
	{"not-entry", registry.ErrNotEntry},
	{"closure", registry.ErrClosure},
	{"method-value", registry.ErrMethodValue},
	{"generic", registry.ErrGeneric},
	{"wrapper", registry.ErrWrapper},
	{"protected", registry.ErrProtected},
	{"inlined", registry.ErrInlined},
	{"unpatchable", registry.ErrUnpatchable},
	{"no-relay", registry.ErrNoRelay},
	{"code-write", registry.ErrCodeWrite},
	{"unsupported", registry.ErrUnsupported},
}

var out []verdict

// tries are the architecture-specific ones (an assembly function).
var tries []func()

// try runs Set(fn, impl), then Reset(fn) if it took effect, and records
// the verdict under the entry of fn's code.
func try[F any](name string, fn, impl F) {
	err := registry.Set(fn, impl)
	if err == nil {
		if rerr := registry.Reset(fn); rerr != nil {
			panic(rerr)
		}
	}
	v := verdict{Name: name, Entry: "0x" + strconv.FormatUint(uint64(reflect.ValueOf(fn).Pointer()), 16)}
	if err != nil {
		v.Err, v.Sentinel = err.Error(), "other"
		for _, s := range sentinels {
			if errors.Is(err, s.err) {
				v.Sentinel = s.name
				break
			}
		}
	}
	out = append(out, v)
}

func main() {
	k := len(os.Args) // captured: the literal below is a closure instance
	closure := func(x int) int { return x + k }
	t := &T{v: 1}

	try("plain", plain, func(x int) int { return -x })
	try("small", small, func(x int) int { return -x })
	try("noInline", noInline, func(x int) int { return -x })
	try("(*T).Method", (*T).Method, func(*T, int) int { return -1 })
	try("T.Value", T.Value, func(T) int { return -1 })
	try("(*T).Value", (*T).Value, func(*T) int { return -1 })
	try("t.Method", t.Method, func(int) int { return -1 })
	try("closure", closure, func(x int) int { return -x })
	try("Pick[int]", Pick[int], func(a, b int, first bool) int { return -1 })
	try("strconv.Itoa", strconv.Itoa, func(int) string { return "" })
	try("runtime.GC", runtime.GC, func() {})
	try("time.Sleep", time.Sleep, func(time.Duration) {})
	for _, f := range tries {
		f()
	}

	// small is called directly, so inlined; plain and the closure are
	// not, so Set accepts them.
	if callSmall(k)+noInline(k) == 0 {
		os.Exit(3)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}
