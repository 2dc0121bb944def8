// Package switchboard holds the shared dispatcher stub (asm_amd64.s) and the
// lock-free table of routes it reads.
//
// A relay site (see package dispatch) calls the dispatcher. The dispatcher
// takes the return address of that call as its key, finds the key's Route in
// the table and returns to the site with the route's current target in R12
// (code) and RDX (closure context); the site then jumps to R12.
//
// cdispatcher (cdispatch_amd64.s) is the dispatcher of C functions: their
// sites carry a *CRoute after the site's JMP R11, and it returns the
// route's code in R11, the one register System V leaves free at a call.
//
// It also holds originalEntry, the Go-code entry of the func values that
// registry.Original returns, which jumps on to a trampoline.
//
// This package owns the table layout, the hash, and the register contract of
// the dispatcher. It must not touch code bytes, relay pages or function
// metadata: those belong to dispatch, registry and unwind. It imports nothing
// outside the standard library, so the dispatcher never depends on code that
// a user might patch.
package switchboard
