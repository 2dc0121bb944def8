package registry_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-go/switchboard/registry"
)

// Compute is the function to redirect. Switchboard refuses functions the
// compiler inlined, so functions meant to be patched are marked noinline.
//
//go:noinline
func Compute(x int) int { return x + 1 }

func ExampleSet() {
	k := 10
	if err := registry.Set(Compute, func(x int) int { return x * k }); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(Compute(4)) // every caller, on every goroutine, now gets x*k

	k = 100
	fmt.Println(Compute(4)) // the closure sees its captured variable

	if err := registry.Reset(Compute); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(Compute(4))
	// Output:
	// 40
	// 400
	// 5
}

func ExampleSet_refused() {
	var b strings.Builder
	err := registry.Set(b.Len, func() int { return 0 }) // a method value: patch (*strings.Builder).Len
	fmt.Println(errors.Is(err, registry.ErrMethodValue))
	// Output: true
}
