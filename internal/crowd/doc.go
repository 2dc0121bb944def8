// Package crowd takes the low address space of a test process, so that a
// small test binary finds the relay windows taken that a large one (the
// Go toolchain's compile: a 50 MiB image at 0x400000) finds taken. There,
// tiny leaves need the eviction chains and prefixed eviction jumps that a
// small binary's free space spares them; tests crowd the space to reach
// those tactics with real Go victims.
//
// It decides nothing about patching: it only maps inaccessible pages.
package crowd
