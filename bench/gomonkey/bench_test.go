package gomonkeybench

import (
	"slices"
	"testing"
	"time"

	"github.com/agiledragon/gomonkey/v2"
	"github.com/switchboard-go/switchboard/registry"
)

// sink keeps every loop's result alive, so no call is optimized away.
var sink int

// One loop per callee, each a static call in a non-inlined function of the
// same shape, so the direct and the patched loop compile to the same code
// apart from the call's target.

//go:noinline
func loopImplControl(n int) (s int) {
	for i := range n {
		s += implControl(i)
	}
	return s
}

//go:noinline
func loopVictimControl(n int) (s int) {
	for i := range n {
		s += victimControl(i)
	}
	return s
}

//go:noinline
func loopImplSite(n int) (s int) {
	for i := range n {
		s += implSite(i)
	}
	return s
}

//go:noinline
func loopVictimSite(n int) (s int) {
	for i := range n {
		s += victimSite(i)
	}
	return s
}

//go:noinline
func loopImplCall(n int) (s int) {
	for i := range n {
		s += implCall(i)
	}
	return s
}

//go:noinline
func loopVictimCall(n int) (s int) {
	for i := range n {
		s += victimCall(i)
	}
	return s
}

//go:noinline
func loopImplGomonkey(n int) (s int) {
	for i := range n {
		s += implGomonkey(i)
	}
	return s
}

//go:noinline
func loopVictimGomonkey(n int) (s int) {
	for i := range n {
		s += victimGomonkey(i)
	}
	return s
}

// chunk is how many calls are timed at a stretch before switching between
// the direct and the patched loop: 8192 calls take 10-40 us, short enough
// that most chunk pairs see no preemption or descheduling, long enough
// that reading the clock (tens of ns) is lost in the noise.
const chunk = 1 << 13

func timeLoop(loop func(int) int, n int) int64 {
	t0 := time.Now()
	sink += loop(n)
	return time.Since(t0).Nanoseconds()
}

// compare times b.N calls through direct and b.N calls through patched,
// interleaved in chunks of the same size, alternating which goes first.
// Each chunk pair gives one ratio patched/direct, measured within tens of
// microseconds. It reports the median ratio as x-direct, and the median
// chunk's time per call of each loop as ns/op (patched) and direct-ns/op.
// Medians, not sums: on a shared machine a few chunks are hit by the OS
// scheduler, and one 10 ms stall in a sum swamps the 1 ns being measured.
func compare(b *testing.B, direct, patched func(int) int) {
	pairs := (b.N + chunk - 1) / chunk
	ratios := make([]float64, 0, pairs)
	nsD := make([]float64, 0, pairs)
	nsP := make([]float64, 0, pairs)
	for done, k := 0, 0; done < b.N; k++ {
		n := min(chunk, b.N-done)
		var td, tp int64
		if k&1 == 0 {
			td = timeLoop(direct, n)
			tp = timeLoop(patched, n)
		} else {
			tp = timeLoop(patched, n)
			td = timeLoop(direct, n)
		}
		done += n
		if n < chunk/2 && k > 0 {
			continue // a short tail pair is all clock overhead
		}
		ratios = append(ratios, float64(tp)/float64(max(td, 1)))
		nsD = append(nsD, float64(td)/float64(n))
		nsP = append(nsP, float64(tp)/float64(n))
	}
	b.ReportMetric(median(nsP), "ns/op")
	b.ReportMetric(median(nsD), "direct-ns/op")
	b.ReportMetric(median(ratios), "x-direct")
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// expect checks that victim answers want, so a patch that silently did
// nothing (or was not undone) fails the benchmark.
func expect(b *testing.B, what string, victim func(int) int, want int) {
	b.Helper()
	if got := victim(1); got != want {
		b.Fatalf("%s: victim(1) = %d, want %d", what, got, want)
	}
}

func BenchmarkDispatch(b *testing.B) {
	// direct: the control. Both loops make a direct call to identical,
	// unpatched functions, so x-direct shows the noise floor (about 1).
	b.Run("direct", func(b *testing.B) {
		expect(b, "control", victimControl, oldValue)
		compare(b, loopImplControl, loopVictimControl)
	})

	// site: Switchboard's default mode (registry.Set).
	b.Run("site", func(b *testing.B) {
		if err := registry.Set(victimSite, implSite); err != nil {
			b.Fatal(err)
		}
		expect(b, "site mode", victimSite, newValue)
		compare(b, loopImplSite, loopVictimSite)
		if err := registry.Reset(victimSite); err != nil {
			b.Fatal(err)
		}
		expect(b, "site mode Reset", victimSite, oldValue)
	})

	// call: Switchboard's call mode, kept for comparison.
	b.Run("call", func(b *testing.B) {
		if err := registry.SetWith(victimCall, implCall, registry.WithMode(registry.CallMode)); err != nil {
			b.Fatal(err)
		}
		expect(b, "call mode", victimCall, newValue)
		compare(b, loopImplCall, loopVictimCall)
		if err := registry.Reset(victimCall); err != nil {
			b.Fatal(err)
		}
		expect(b, "call mode Reset", victimCall, oldValue)
	})

	// gomonkey: ApplyFunc writes a 12-byte movabs rdx + jmp [rdx] over
	// the victim's entry.
	b.Run("gomonkey", func(b *testing.B) {
		p := gomonkey.ApplyFunc(victimGomonkey, implGomonkey)
		expect(b, "gomonkey ApplyFunc", victimGomonkey, newValue)
		compare(b, loopImplGomonkey, loopVictimGomonkey)
		p.Reset()
		expect(b, "gomonkey Reset", victimGomonkey, oldValue)
	})
}
