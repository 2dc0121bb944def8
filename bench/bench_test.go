package bench

import (
	"testing"
)

func TestVariantsComputeTheSame(t *testing.T) {
	for _, v := range Variants() {
		undo, err := v.Setup()
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		err = Check(v)
		if uerr := undo(); uerr != nil {
			t.Fatalf("%s undo: %v", v.Name, uerr)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkDispatch reports, per variant, ns/call and x-direct, the ratio to
// a direct call timed in the same benchmark, chunk by chunk. ns/op counts
// both loops (b.N variant calls and b.N direct calls).
func BenchmarkDispatch(b *testing.B) {
	eachVariant(b, func(b *testing.B, v Variant) {
		ns, ratio := Ratio(v, b.N)
		b.ReportMetric(ns, "ns/call")
		b.ReportMetric(ratio, "x-direct")
	})
}

// BenchmarkDispatchMin reports, per variant, x-direct-min: the fastest
// chunk of 4,096 variant calls over the fastest chunk of direct calls,
// alternated (MinRatio), for comparisons on a loaded machine. Use a fixed
// count, e.g. -benchtime 20000000x.
func BenchmarkDispatchMin(b *testing.B) {
	eachVariant(b, func(b *testing.B, v Variant) {
		b.ReportMetric(MinRatio(v, b.N), "x-direct-min")
	})
}

// eachVariant runs measure as a sub-benchmark of each variant, installed
// and checked.
func eachVariant(b *testing.B, measure func(*testing.B, Variant)) {
	for _, v := range Variants() {
		b.Run(v.Name, func(b *testing.B) {
			undo, err := v.Setup()
			if err != nil {
				b.Fatal(err)
			}
			defer undo()
			if err := Check(v); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			measure(b, v)
		})
	}
}

// BenchmarkSet measures the three kinds of writes: a first Set (code
// written, cores serialized), a retargeting Set (one pointer store) and a
// Reset. First Set and Reset alternate, each timed on its own (StopTimer
// would stop the world to read memory statistics, dwarfing a write).
func BenchmarkSet(b *testing.B) {
	b.Run("first+reset", func(b *testing.B) {
		first, reset := SetResetCost(b.N)
		b.ReportMetric(float64(first.Nanoseconds()), "first-set-ns")
		b.ReportMetric(float64(reset.Nanoseconds()), "reset-ns")
	})
	b.Run("retarget", func(b *testing.B) {
		b.ReportMetric(float64(RetargetCost(b.N).Nanoseconds()), "retarget-ns")
	})
}
