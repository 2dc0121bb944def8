// Package dispatch plans and writes patches: it decodes a function's
// prologue, chooses a tactic that keeps every interior instruction
// boundary intact (punning) or, for the tiny leaves punning cannot serve,
// evicts the second instruction to a stub that runs a copy of it
// (evict.go), finds and maps relay pages within reach, writes relay sites
// with their route pointers, writes the prologue with one atomic quadword
// store (an octoword, with CMPXCHG16B, for a wide eviction; many, grouped
// per page, for a batch),
// serializes every core with membarrier SYNC_CORE, and builds the
// trampolines that run a function's original body. C functions get their
// own planner and site (cplan.go).
//
// It owns code bytes, relay pages and the tactics. It must not decide what
// may be patched (registry does), read binaries (unwind does) or know the
// Route's layout beyond the pointer a site carries (the root package owns
// it).
package dispatch
