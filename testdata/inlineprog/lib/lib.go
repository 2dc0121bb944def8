// Package lib holds a function that inlineprog's caller inlines across a
// package boundary.
package lib

// AddTwo folds into its caller's lea: the inlined body leaves no
// instruction of its own, and package lib never inlines it itself.
func AddTwo(x int) int { return x + 2 }

// Forward is exported and called only through a func value, so never
// inlined. DWARF's silence alone would not prove that for an exported
// function, but every path calls twice, a call any inlined copy would
// keep, and so record.
func Forward(x int) int { return twice(x) }

//go:noinline
func twice(x int) int { return 2 * x }
