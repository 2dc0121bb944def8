package main

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// allowedLog tells a worker which implementations may have produced a
// result. The patcher is its only writer: before each Set or Reset it
// publishes a generation allowing the old and the new implementation, and
// after it one allowing the new only. A worker reads the generation before
// and after a request; any implementation allowed in between may have run.
// Once Set has returned, the old implementation is no longer allowed, so a
// stale call counts as wrong.
type allowedLog struct {
	gen   atomic.Uint64
	n     int             // targets per row
	all   []uint32        // fallback per target when the ring wrapped under a reader
	masks []atomic.Uint32 // logRows rows of n masks; row g%logRows is generation g
}

const logRows = 1024

func newAllowedLog(ts []*patchTarget) *allowedLog {
	l := &allowedLog{n: len(ts), masks: make([]atomic.Uint32, logRows*len(ts))}
	for i, t := range ts {
		l.all = append(l.all, t.all())
		l.masks[i].Store(1) // generation 0: every target runs its original
	}
	return l
}

func (l *allowedLog) row(g uint64) []atomic.Uint32 {
	i := int(g%logRows) * l.n
	return l.masks[i : i+l.n]
}

// publish starts a generation in which target t may run the implementations
// in mask. The row is complete before the generation is visible.
func (l *allowedLog) publish(t int, mask uint32) {
	g := l.gen.Load()
	cur, next := l.row(g), l.row(g+1)
	for i := range next {
		next[i].Store(cur[i].Load())
	}
	next[t].Store(mask)
	l.gen.Store(g + 1)
}

// allowed returns the implementations of target t allowed at any
// generation from g1 to g2.
func (l *allowedLog) allowed(g1, g2 uint64, t int) uint32 {
	if g2-g1 >= logRows-1 {
		return l.all[t]
	}
	var m uint32
	for g := g1; g <= g2; g++ {
		m |= l.row(g)[t].Load()
	}
	// The writer fills row g+logRows while generation g+logRows-1 is current.
	if l.gen.Load()-g1 >= logRows-1 {
		return l.all[t]
	}
	return m
}

type patchOp int

const (
	opPatch    patchOp = iota // Set on a function running its original: code is written
	opRetarget                // Set on a redirected function: one pointer store
	opReset                   // Reset: original bytes back
	nPatchOps
)

// latencyReservoir keeps a uniform sample of latencies (Vitter's algorithm R), so
// whole-run percentiles cost fixed memory.
type latencyReservoir struct {
	seen int
	max  time.Duration
	s    []time.Duration
}

const latencyReservoirSize = 1 << 14

func (r *latencyReservoir) add(d time.Duration) {
	r.seen++
	r.max = max(r.max, d)
	if len(r.s) < latencyReservoirSize {
		r.s = append(r.s, d)
	} else if j := rand.IntN(r.seen); j < latencyReservoirSize {
		r.s[j] = d
	}
}

// latencyPercentile returns the nearest-rank p-th percentile of sorted.
func latencyPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// patchStats collects what the patcher did. The patcher adds; the reporter
// takes each second's latencies.
type patchStats struct {
	mu        sync.Mutex
	sec       [nPatchOps][]time.Duration // since the last take
	total     [nPatchOps]uint64
	all       [nPatchOps]latencyReservoir
	perTarget [][nPatchOps]uint64
	failures  uint64
	errs      []string // the first few failures
}

func (s *patchStats) add(t int, k patchOp, d time.Duration) {
	s.mu.Lock()
	s.sec[k] = append(s.sec[k], d)
	s.total[k]++
	s.all[k].add(d)
	s.perTarget[t][k]++
	s.mu.Unlock()
}

func (s *patchStats) fail(err error) {
	s.mu.Lock()
	s.failures++
	if len(s.errs) < 5 {
		s.errs = append(s.errs, err.Error())
	}
	s.mu.Unlock()
}

// take returns the latencies since the last take, sorted, and the failures so far.
func (s *patchStats) take() (sec [nPatchOps][]time.Duration, failures uint64) {
	s.mu.Lock()
	sec, failures = s.sec, s.failures
	s.sec = [nPatchOps][]time.Duration{}
	s.mu.Unlock()
	for _, l := range sec {
		slices.Sort(l)
	}
	return sec, failures
}

// wrongLog counts wrong results and keeps the first few for the report.
type wrongLog struct {
	n       atomic.Uint64
	mu      sync.Mutex
	samples []string
}
