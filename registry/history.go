package registry

import "time"

// history is what List reports about a record's past.
type history struct {
	setAt     time.Time // last redirect from the original; zero = never patched
	retargets int       // Sets that changed the target since setAt
}

func (h *history) noteSet(now time.Time) { h.setAt, h.retargets = now, 0 }

func (h *history) noteRetarget(now time.Time) {
	if h.setAt.IsZero() {
		h.setAt = now
	}
	h.retargets++
}
