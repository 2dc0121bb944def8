package bench

import (
	"os"
	"slices"
	"testing"
)

// BenchmarkFirstSet40000 builds a program of about 40,000 functions three
// ways (with DWARF; without, -ldflags=-s -w; without and without inlining,
// -gcflags=all=-l too) and runs it as a child: ns/op is one run; the
// metrics are its first Set (CPU of every thread, RSS growth, bytes
// allocated) and the median of its later first Sets.
// SWITCHBOARD_FIRSTSET_PROFILE=prefix makes each child write CPU and
// allocation profiles of its first Set to prefix-dwarf.cpu, ....
func BenchmarkFirstSet40000(b *testing.B) {
	for _, build := range []FirstSetBuild{BuildDWARF, BuildStripped, BuildNoInline} {
		name := string(build)
		b.Run(name, func(b *testing.B) {
			bin := firstSetProgramFor(b, 40_000, build)
			profile := os.Getenv("SWITCHBOARD_FIRSTSET_PROFILE")
			if profile != "" {
				profile += "-" + name
			}
			var runs []FirstSetRun
			for b.Loop() {
				r, err := RunFirstSetProgram(bin, profile)
				if err != nil {
					b.Fatal(err)
				}
				runs = append(runs, r)
			}
			reportFirstSet(b, runs)
		})
	}
}

func firstSetProgramFor(tb testing.TB, n int, build FirstSetBuild) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds a generated program")
	}
	module, err := ModuleDir()
	if err != nil {
		tb.Skip(err)
	}
	bin, err := BuildFirstSetProgram(tb.TempDir(), module, n, build)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

func reportFirstSet(b *testing.B, runs []FirstSetRun) {
	median := func(f func(FirstSetRun) []int64) float64 {
		var xs []int64
		for _, r := range runs {
			xs = append(xs, f(r)...)
		}
		slices.Sort(xs)
		return float64(xs[len(xs)/2])
	}
	one := func(f func(FirstSetRun) int64) func(FirstSetRun) []int64 {
		return func(r FirstSetRun) []int64 { return []int64{f(r)} }
	}
	b.ReportMetric(float64(runs[0].Funcs), "funcs")
	b.ReportMetric(median(one(func(r FirstSetRun) int64 { return r.FirstCPU }))/1e6, "first-cpu-ms")
	b.ReportMetric(median(one(func(r FirstSetRun) int64 { return r.FirstWall }))/1e6, "first-wall-ms")
	b.ReportMetric(median(one(func(r FirstSetRun) int64 { return r.FirstRSS }))/1e6, "first-rss-MB")
	b.ReportMetric(median(one(func(r FirstSetRun) int64 { return r.FirstAlloc }))/1e6, "first-alloc-MB")
	b.ReportMetric(median(func(r FirstSetRun) []int64 { return r.LaterCPU })/1e3, "later-cpu-µs")
	b.ReportMetric(median(func(r FirstSetRun) []int64 { return r.LaterWall })/1e3, "later-wall-µs")
}
