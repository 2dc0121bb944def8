package gomonkeybench

// Victims and impls. Every one has the same shape, a non-inlined
// func(int) int, so that a patched call and a direct call run the same
// body. Each technique gets its own victim, so patches never overlap.
// victim(x) = 3x+1 and impl(x) = 3x+100: victim(1) is 4 before a patch
// and 103 after it.

const (
	oldValue = 4   // victim(1), unpatched
	newValue = 103 // impl(1)
)

//go:noinline
func victimControl(x int) int { return x*3 + 1 }

//go:noinline
func victimSite(x int) int { return x*3 + 1 }

//go:noinline
func victimCall(x int) int { return x*3 + 1 }

//go:noinline
func victimGomonkey(x int) int { return x*3 + 1 }

//go:noinline
func stormSwitchboard(x int) int { return x*3 + 1 }

//go:noinline
func stormGomonkey(x int) int { return x*3 + 1 }

//go:noinline
func implControl(x int) int { return x*3 + 100 }

//go:noinline
func implSite(x int) int { return x*3 + 100 }

//go:noinline
func implCall(x int) int { return x*3 + 100 }

//go:noinline
func implGomonkey(x int) int { return x*3 + 100 }

//go:noinline
func implStorm(x int) int { return x*3 + 100 }
