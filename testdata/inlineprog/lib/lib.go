// Package lib holds a function that inlineprog's caller inlines across a
// package boundary.
package lib

// AddTwo folds into its caller's lea: the inlined body leaves no
// instruction of its own, and package lib never inlines it itself.
func AddTwo(x int) int { return x + 2 }
