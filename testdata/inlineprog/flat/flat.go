// Package flat inlines one function into another, leaving no instruction
// of the inlined copy: built with inlining while every other package is
// built with -l, the binary has no inline tree at all.
package flat

// AddOne folds into CallAddOne's lea.
func AddOne(x int) int { return x + 1 }

// CallAddOne inlines AddOne.
//
//go:noinline
func CallAddOne(a int) int { return AddOne(a) + 1 }
