// Package main is a c-shared library (go build -buildmode=c-shared) whose
// Go code patches its own functions: the Go runtime and Switchboard live
// in this .so, loaded by a C host (testdata/csharedprog/host.c) whose
// executable holds no Go code. Storm runs the flip storm on victim while
// the host's pthreads call victim through CallVictim.
package main

import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/testdata/modstorm"
	"github.com/switchboard-go/switchboard/unwind"
)

//go:noinline
func victim(x int) int { return 2*x + 1 }

// CallVictim is victim for C callers: the host's pthreads call it while
// Storm flips victim.
//
//export CallVictim
func CallVictim(x C.int) C.int { return C.int(victim(int(x))) }

// callVictim calls victim directly, as the library's Go code does.
//
//go:noinline
func callVictim(x int) int { return victim(x) }

// small is inlined into usesSmall: Set must refuse it.
func small(x int) int { return x + 1 }

//go:noinline
func usesSmall(x int) int { return small(x) * 2 }

// Storm runs the flip storm for ms milliseconds, then the scoped patch and
// the refusals, and prints what it did. It returns 0 when all is well.
//
//export Storm
func Storm(ms C.int) C.int {
	if err := storm(time.Duration(ms) * time.Millisecond); err != nil {
		fmt.Println("go: FAIL:", err)
		return 1
	}
	fmt.Println("go: OK")
	return 0
}

func storm(d time.Duration) error {
	im, err := unwind.ImageAt(modstorm.Entry(victim))
	if err != nil {
		return fmt.Errorf("victim's module: %w", err)
	}
	fmt.Printf("library: %s loaded at bias %#x, victim at %#x\n", im.Path, im.Bias, modstorm.Entry(victim))
	// The first patch reads the library's function table, DWARF (inlining)
	// and runs the self-check.
	start := time.Now()
	if _, err := registry.Original(victim); err != nil {
		return err
	}
	fmt.Printf("first Original of victim: %v\n", time.Since(start).Round(time.Microsecond))
	line, err := modstorm.Run(victim, []func(int) int{callVictim}, d)
	fmt.Println(line)
	if err != nil {
		return err
	}
	if err := modstorm.Scoped(victim); err != nil {
		return err
	}
	if err := registry.Set(victim, modstorm.Repl); err != nil {
		return err
	}
	e := modstorm.Entry(victim)
	fmt.Printf("tactic: victim file %#x %s\n", e-im.Bias, modstorm.Tactic(e))
	if err := registry.Reset(victim); err != nil {
		return err
	}
	before := registry.List()
	for _, c := range []struct {
		what string
		err  error
		want error
	}{
		{"Set of a function inlined inside the library", registry.Set(small, modstorm.Repl), registry.ErrInlined},
		{"Set of the library's fmt.Sprint", registry.Set(fmt.Sprint, func(...any) string { return "" }), registry.ErrProtected},
		{"Set of the library's time.Sleep (runtime code)", registry.Set(time.Sleep, func(time.Duration) {}), registry.ErrProtected},
	} {
		var re *registry.Error
		if !errors.Is(c.err, c.want) || !errors.As(c.err, &re) {
			return fmt.Errorf("%s: %v, want a *registry.Error wrapping %v", c.what, c.err, c.want)
		}
		fmt.Printf("refused: %s: %v\n", c.what, c.err)
	}
	if !reflect.DeepEqual(before, registry.List()) || usesSmall(1) != 4 || victim(3) != 7 {
		return errors.New("a refusal changed List or behaviour")
	}
	return nil
}

func main() {}
