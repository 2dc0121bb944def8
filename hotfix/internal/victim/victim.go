// Package victim holds the functions the hotfix tests patch from a plugin.
package victim

// Greeting is what the test fix replaces.
//
//go:noinline
func Greeting(name string) string { return "hello, " + name }

// Twice is staged together with Greeting, for a cycle.
//
//go:noinline
func Twice(x int) int { return 2 * x }

// Thrice is Twice's partner in the cycle.
//
//go:noinline
func Thrice(x int) int { return 3 * x }
