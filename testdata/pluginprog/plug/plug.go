// Package main is a Go plugin whose functions the host program
// (testdata/pluginprog) patches: they live in the plugin's text, far from
// the executable's, and only the plugin's function table, DWARF and load
// bias describe them.
package main

import "fmt"

// Victim is the function the host storms.
//
//go:noinline
func Victim(x int) int { return 2*x + 1 }

// CallVictim calls Victim directly, as the plugin's own code does: the
// call does not go through any func value.
//
//go:noinline
func CallVictim(x int) int { return Victim(x) }

// small is inlined into UsesSmall: Set must refuse it.
func small(x int) int { return x + 1 }

// UsesSmall holds the inlined copy of small.
//
//go:noinline
func UsesSmall(x int) int { return small(x) * 2 }

// Small is a func value of small, for the host.
var Small = small

// Sprint is the plugin's copy of a package Switchboard runs (fmt): Set
// must refuse it.
var Sprint = fmt.Sprint

// Closure is a closure instance of the plugin's code.
var Closure = func() func(int) int {
	k := 3
	return func(x int) int { return x * k }
}()

func main() {}
