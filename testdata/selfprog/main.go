// Command selfprog is a fixture for registry's tests: it redirects one of
// its own functions and calls the original, after optionally deleting its
// own binary (SELFPROG_DELETE=1), as a deployment that replaces a running
// binary would. It prints "ok" and the results, or the error.
package main

import (
	"fmt"
	"os"

	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func compute(x int) int { return helper(x) + 1 }

//go:noinline
func helper(x int) int { return x * 2 }

func main() {
	if os.Getenv("SELFPROG_DELETE") == "1" {
		if err := os.Remove(os.Args[0]); err != nil {
			fmt.Println("remove:", err)
			os.Exit(1)
		}
	}
	orig, err := registry.Original(compute)
	if err == nil {
		err = registry.Set(compute, func(x int) int { return -orig(x) })
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("ok compute(3)=%d original(3)=%d\n", compute(3), orig(3))
}
