// Command lookupprog is a fixture for registry's tests: it looks up its own
// unexported functions by name with right and wrong func types and prints
// one line per case, so the test can compare a build with DWARF against
// one without (-ldflags=-w).
package main

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/switchboard-go/switchboard/registry"
)

type box struct{ a, b int }

//go:noinline
func square(x int) int { return x*x + helper() }

//go:noinline
func helper() int { return 0 }

//go:noinline
func (b *box) get() int { return b.a + b.b + helper() }

func main() {
	fmt.Println("box", (&box{1, 2}).get())
	for _, c := range []struct {
		name string
		t    reflect.Type
	}{
		{"main.square", reflect.TypeFor[func(int) int]()},
		{"main.square", reflect.TypeFor[func(int) string]()},
		{"main.square", reflect.TypeFor[func(*int) int]()},
		{"main.square", reflect.TypeFor[func(int, int) int]()},
		{"main.square", reflect.TypeFor[func(int) (int, int)]()},
		{"main.(*box).get", reflect.TypeFor[func(*box) int]()},
		{"main.(*box).get", reflect.TypeFor[func(uintptr) int]()},
		{"main.(*box).get", reflect.TypeFor[func(box) int]()},
	} {
		_, err := registry.LookupValue(c.name, c.t)
		res := "ok"
		if errors.Is(err, registry.ErrTypeMismatch) {
			res = "mismatch"
		} else if err != nil {
			res = err.Error()
		}
		fmt.Printf("%s %v: %s\n", c.name, c.t, res)
	}
	sq, err := registry.Lookup[func(int) int]("main.square")
	if err == nil {
		err = registry.Set(sq, func(x int) int { return -x })
	}
	fmt.Printf("square(4) after Set by name: %d %v\n", square(4), err)
}
