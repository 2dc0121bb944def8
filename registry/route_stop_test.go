//go:build linux && amd64

package registry_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// TestDispatcherStops traces the calling thread of a child
// (testdata/routeprog) with ptrace and stops one call of a method at every
// pair of instruction boundaries i <= j on its way from the patched entry
// through the relay site and the dispatcher. At stop i the child moves the
// method to a second implementation, at stop j to a third, the way the
// demo moves it: between global patches and one scoped to the call's
// receiver, the new one set before the old one is removed, never through
// the original. The call must return what one of the three computes for
// its receiver: calls on the scoped patch's receiver (they match its
// guard) and on another one (they miss it, and run the original while the
// scoped patch is the only one).
//
// It is the stress the demo puts on the dispatcher, made exhaustive: a
// thread descheduled at the wrong instruction. A dispatcher that reads
// the guards and the global target as two words fails it (it mixed the
// guards of one state with the target of the next and ran the original,
// once in about 10^9 calls of the demo on a loaded machine).
func TestDispatcherStops(t *testing.T) {
	c := startBoundaryChild(t, buildTracedProg(t, "routeprog"))
	if len(c.victims) != 2 || len(c.dispatcher) < 2 {
		t.Fatalf("child sent %d victims and dispatcher %#x", len(c.victims), c.dispatcher)
	}
	for _, b := range c.dispatcher {
		if b[0] == 0 || b[1] <= b[0] {
			t.Fatalf("dispatcher bounds %#x", c.dispatcher)
		}
	}
	v := c.victims[0]  // the call's receiver; set below
	var siteEnd uint64 // read once the thread is stopped
	routing := func(rip uint64) bool {
		return rip >= v.entry && rip < v.entry+5 || rip >= v.site && rip < siteEnd ||
			slices.ContainsFunc(c.dispatcher, func(b [2]uint64) bool { return rip >= b[0] && rip < b[1] })
	}
	names := []string{"orig", "p20", "flat", "p30"}
	// seen is what a call on receiver r runs in state k: the scoped p30
	// is not for the second receiver, whose calls fall through to the
	// original then.
	seen := func(r, k int) string {
		switch {
		case r == 1 && k == 3:
			return "orig"
		case k == 4 && r == 0:
			return "p30"
		case k == 4:
			return "p20"
		}
		return names[k]
	}
	cur := 1 // the child starts with p20
	move := func(to int) {
		t.Helper()
		fmt.Fprintf(c.stdin, "move 0 %d\n", to)
		if got := c.line(); got != "move 0 ok" {
			t.Fatalf("move to state %d: child answered %q", to, got)
		}
		cur = to
	}
	// call stops a call at boundaries i and j (counted from the entry) and
	// moves the method to m1 and m2 there. reached reports whether the
	// call was still routing at j.
	call := func(i, j, m1, m2 int) (o stopOutcome, reached bool) {
		t.Helper()
		c.breakAtEntry(v)
		if siteEnd == 0 {
			// The site runs up to its jmp r12; the route pointer follows.
			site := c.peek(v.site, 32)
			k := bytes.Index(site, []byte{0x41, 0xFF, 0xE4})
			if k < 0 {
				t.Fatalf("no jmp r12 in the site % x", site)
			}
			siteEnd = v.site + uint64(k) + 3
		}
		rip := v.entry
		for n := 0; ; n++ {
			if n == i {
				move(m1)
			}
			if n == j {
				move(m2)
				reached = true
			}
			if n >= j || !routing(rip) {
				break
			}
			r, sig := c.step()
			if sig != 0 {
				return stopOutcome{"crash", fmt.Sprintf("%v at %#x", sig, r.Rip)}, reached
			}
			rip = r.Rip
		}
		if !reached {
			if cur != m1 {
				move(m1)
			}
			move(m2)
		}
		o = c.resume(v)
		c.x = 5 + (c.x-4)%100
		return o, reached
	}
	trials := 0
	longest := 0
	for _, v = range c.victims {
		for s0 := 1; s0 <= 4; s0++ {
			for m1 := 1; m1 <= 4; m1++ {
				for m2 := 1; m2 <= 4; m2++ {
					if m1 == s0 || m2 == m1 {
						continue
					}
					allowed := []string{seen(v.idx, s0), seen(v.idx, m1), seen(v.idx, m2)}
					for i := 0; ; i++ {
						reachedI := false
						for j := i; ; j++ {
							if cur != s0 {
								move(s0)
							}
							o, reached := call(i, j, m1, m2)
							trials++
							if !slices.Contains(allowed, o.verdict) {
								t.Errorf("receiver %d, state %d, moved to state %d at step %d and to %d at step %d: %s (%s), want one of %v",
									v.idx, s0, m1, i, m2, j, o.verdict, o.detail, allowed)
							}
							if !reached {
								break
							}
							reachedI = true
							longest = max(longest, j)
						}
						if !reachedI {
							break
						}
					}
				}
			}
		}
	}
	// The entry's jump, the site and the dispatcher take 14 instructions
	// up to the jump into the table; the check after it at least 3 more.
	if longest < 17 {
		t.Fatalf("calls stopped at most %d instructions in: the stepping saw no dispatcher, or none of its checks", longest)
	}
	t.Logf("%d stopped calls, up to %d instructions from the entry", trials, longest)
}
