// Command cgoprog is a fixture for package unwind's tests: a cgo program
// with C++ code, linked by the system linker. It prints what unwind makes
// of its own C++ function and of a Go function.
package main

/*
#include <stdint.h>
uintptr_t twice_addr(void);
int call_twice(int);
*/
import "C"

import (
	"fmt"
	"reflect"

	"github.com/switchboard-go/switchboard/unwind"
)

//go:noinline
func goFunc(x int) int { return x + int(C.call_twice(C.int(x))) }

func main() {
	im, err := unwind.Self()
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	pc := uintptr(C.twice_addr())
	f, _ := im.Lookup(reflect.ValueOf(goFunc).Pointer())
	fmt.Printf("c++: %s\ngo: %s size=%d\n", unwind.Name(pc+1), f.Name, f.Size)
}
