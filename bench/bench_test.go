package bench

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/registry"
)

func TestVariantsComputeTheSame(t *testing.T) {
	for _, v := range Variants {
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

// BenchmarkDispatch reports ns per call and x-direct, the ratio to a direct
// call timed in the same benchmark.
func BenchmarkDispatch(b *testing.B) {
	for _, v := range Variants {
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
			_, ratio := Ratio(v, b.N)
			b.ReportMetric(ratio, "x-direct")
		})
	}
}

//go:noinline
func setVictim(x int) int { return helper(x) * 5 }

// BenchmarkSet measures the three kinds of writes: the first Set (code
// written, membarrier), a retargeting Set (one pointer store) and Reset.
func BenchmarkSet(b *testing.B) {
	other := func(x int) int { return x }
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if err := registry.Set(setVictim, target); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := registry.Reset(setVictim); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("retarget", func(b *testing.B) {
		if err := registry.Set(setVictim, target); err != nil {
			b.Fatal(err)
		}
		defer registry.Reset(setVictim)
		for i := 0; b.Loop(); i++ {
			impl := target
			if i&1 == 0 {
				impl = other
			}
			if err := registry.Set(setVictim, impl); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reset", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := registry.Set(setVictim, target); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := registry.Reset(setVictim); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLookup runs the dispatcher's probe over tables of 1, 1,000 and
// 100,000 keys: its cost must not grow with the number of patched
// functions.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 1_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			tab, keys := LookupTable(n)
			b.ResetTimer()
			var hit *switchboard.Route
			for i := 0; b.Loop(); i++ {
				hit = tab.Lookup(keys[i%len(keys)])
			}
			if hit == nil {
				b.Fatal("miss")
			}
			_ = unsafe.Pointer(hit)
		})
	}
}
