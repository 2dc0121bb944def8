// Package switchboard holds the shared dispatcher stub (asm_amd64.s) and the
// Route it reads.
//
// A relay site (see package dispatch) is
//
//	[pop rbp]; call dispatcher; jmp r12; <8-byte *Route>
//
// The dispatcher takes the return address of that call, reads the Route
// stored right after the site's jmp r12 (one load, whatever the number of
// patched functions) and returns to the site with R12 = the code to run and
// RDX = its closure context; the site then jumps to R12. Per call:
//
//  1. A morestack restart of a function that Original's stub called (8(SP)
//     is that stub's return address) runs the route's original.
//  2. A route without guards runs its global target, or, when the target is
//     nil, the original with the caller's RDX untouched.
//  3. Otherwise the first guard whose non-zero conditions (RAX, RBX, RDX,
//     the goroutine's label word) all hold, else as in 2.
//
// Each call is decided from one word of the route, Route.fast or the
// immutable snapshot Route.table: reading the guards and the target apart
// could mix two states that never held together. Each entry of the table
// names the code that checks it, one small function per kind of guard and
// per what follows it, so the dispatcher jumps once into the table and a
// guard of one condition costs one compare.
//
// A slot (a site of a slot page, written with the page before it was ever
// executable, when no function was known yet) is
//
//	[pop rbp]; call slotDispatcher; jmp r12
//
// with its *Route in the page after it, SlotRouteOffset past the call's
// return address, where slotDispatcher reads it and then applies the same
// rules; a patch that takes a slot stores that pointer and writes no code.
//
// It also holds originalCall, the Go-code entry of the func values that
// registry.Original returns, which calls the trampoline in their second
// word.
//
// cdispatcher (cdispatch_amd64.s) is the dispatcher of C functions: their
// sites carry a *CRoute after the site's JMP R11, and it returns the
// route's code in R11, the one register System V leaves free at a call.
//
// This package owns the Route layout and the register contract of the
// dispatcher. It must not touch code bytes, relay pages or function
// metadata: those belong to dispatch, registry and unwind. It imports nothing
// outside the standard library, so the dispatcher never depends on code that
// a user might patch.
package switchboard
