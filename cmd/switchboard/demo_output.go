package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// demoSecond is one line of -json output.
type demoSecond struct {
	Type          string      `json:"type"` // "second"
	T             float64     `json:"t"`    // seconds since the start, at the end of this interval
	CallsPerS     float64     `json:"calls_per_s"`
	PatchesPerS   float64     `json:"patches_per_s"`
	RetargetsPerS float64     `json:"retargets_per_s"`
	ResetsPerS    float64     `json:"resets_per_s"`
	Wrong         uint64      `json:"wrong"`    // wrong results in this interval
	Failures      uint64      `json:"failures"` // failed Sets and Resets in this interval
	Patch         demoLatency `json:"patch"`
	Retarget      demoLatency `json:"retarget"`
	Reset         demoLatency `json:"reset"`
}

type demoLatency struct {
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us,omitempty"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us,omitempty"`
	N   int     `json:"samples,omitempty"`
}

func latencyOf(sorted []time.Duration) demoLatency {
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return demoLatency{P50: us(latencyPercentile(sorted, 0.50)), P99: us(latencyPercentile(sorted, 0.99))}
}

// demoSummary is the final -json object, and what the tests inspect.
type demoSummary struct {
	Type          string         `json:"type"` // "summary"
	Seconds       float64        `json:"seconds"`
	Workers       int            `json:"workers"`
	GOMAXPROCS    int            `json:"gomaxprocs"`
	CPUProfiler   bool           `json:"cpu_profiler"`
	GCs           uint64         `json:"gcs"`
	Calls         uint64         `json:"calls"`
	Patches       uint64         `json:"patches"`
	Retargets     uint64         `json:"retargets"`
	Resets        uint64         `json:"resets"`
	Wrong         uint64         `json:"wrong"`
	Failures      uint64         `json:"failures"`
	CallsPerS     float64        `json:"calls_per_s"`
	PatchesPerS   float64        `json:"patches_per_s"`
	RetargetsPerS float64        `json:"retargets_per_s"`
	ResetsPerS    float64        `json:"resets_per_s"`
	Patch         demoLatency    `json:"patch"`
	Retarget      demoLatency    `json:"retarget"`
	Reset         demoLatency    `json:"reset"`
	Functions     []demoFunction `json:"functions"`
	Errors        []string       `json:"errors,omitempty"`        // the first failed Sets and Resets
	WrongResults  []string       `json:"wrong_results,omitempty"` // the first wrong results
}

type demoFunction struct {
	Name      string   `json:"name"`
	Shape     string   `json:"shape"`
	Tactic    string   `json:"tactic"`
	Impls     []string `json:"implementations"`
	Patches   uint64   `json:"patches"`
	Retargets uint64   `json:"retargets"`
	Resets    uint64   `json:"resets"`
}

func (d *demoRun) printHeader(procs int, profiling bool, first []time.Duration) {
	if d.cfg.json {
		return
	}
	w := d.cfg.out
	prof := "CPU profiler on (pprof to io.Discard)"
	if !profiling {
		prof = "CPU profiler already running elsewhere"
	}
	fmt.Fprintf(w, "switchboard demo: hot-patching a pricing service for %v while %d goroutines call it\n", d.cfg.duration, d.cfg.workers)
	fmt.Fprintf(w, "  %s, GOMAXPROCS %d; hazards: %s, runtime.GC every 1ms\n", runtime.Version(), procs, prof)
	fmt.Fprintf(w, "  patch = Set that writes code; retarget = Set while redirected (a pointer store); reset = Reset\n")
	fmt.Fprintf(w, "  every call is checked against the implementations that may be installed: wrong must stay 0\n\n")
	fmt.Fprintf(w, "  %-36s %-36s %-14s %9s  %s\n", "registry.List() after a first Set", "shape", "tactic", "first Set", "now calls")
	for t, r := range d.redirects() {
		tg := d.targets[t]
		if r.Func == "" {
			fmt.Fprintf(w, "  %-36s %-36s %-14s %9s  %s\n", tg.name, tg.shape, "-", fmtLatency(first[t]), "(Set failed)")
			continue
		}
		fmt.Fprintf(w, "  %-36s %-36s %-14s %9s  %s\n", fmt.Sprintf("%s @%#x", r.Func, r.Entry), tg.shape, r.Tactic, fmtLatency(first[t]), r.Target)
	}
	fmt.Fprintf(w, "\n  implementations:\n")
	for _, tg := range d.targets {
		fmt.Fprintf(w, "    %-22s %s\n", tg.name, strings.Join(tg.impls, "; "))
	}
	fmt.Fprintf(w, "\n%6s %9s %9s %11s %8s %5s %6s  %-17s %-17s %-17s\n",
		"t", "calls/s", "patches/s", "retargets/s", "resets/s", "wrong", "failed",
		"patch p50/p99", "retarget p50/p99", "reset p50/p99")
}

func (d *demoRun) printSecond(end, interval time.Duration, calls, wrong, failures uint64, lat [nPatchOps][]time.Duration) {
	sec := interval.Seconds()
	line := demoSecond{
		Type: "second", T: end.Seconds(),
		CallsPerS: float64(calls) / sec, PatchesPerS: float64(len(lat[opPatch])) / sec,
		RetargetsPerS: float64(len(lat[opRetarget])) / sec, ResetsPerS: float64(len(lat[opReset])) / sec,
		Wrong: wrong, Failures: failures,
		Patch: latencyOf(lat[opPatch]), Retarget: latencyOf(lat[opRetarget]), Reset: latencyOf(lat[opReset]),
	}
	if d.cfg.json {
		writeJSONLine(d.cfg.out, line)
		return
	}
	pair := func(s []time.Duration) string {
		return fmtLatency(latencyPercentile(s, 0.5)) + "/" + fmtLatency(latencyPercentile(s, 0.99))
	}
	fmt.Fprintf(d.cfg.out, "%5.1fs %9s %9s %11s %8s %5d %6d  %-17s %-17s %-17s\n",
		line.T, fmtCount(line.CallsPerS), fmtCount(line.PatchesPerS), fmtCount(line.RetargetsPerS), fmtCount(line.ResetsPerS),
		wrong, failures, pair(lat[opPatch]), pair(lat[opRetarget]), pair(lat[opReset]))
}

func (d *demoRun) summary(elapsed time.Duration, procs int, profiling bool) *demoSummary {
	st := &d.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	sec := elapsed.Seconds()
	s := &demoSummary{
		Type: "summary", Seconds: sec, Workers: d.cfg.workers, GOMAXPROCS: procs,
		CPUProfiler: profiling, GCs: d.gcs.Load(),
		Calls: d.calls.Load(), Patches: st.total[opPatch], Retargets: st.total[opRetarget], Resets: st.total[opReset],
		Wrong: d.wrong.n.Load(), Failures: st.failures,
		Errors: slices.Clone(st.errs),
	}
	s.CallsPerS = float64(s.Calls) / sec
	s.PatchesPerS, s.RetargetsPerS, s.ResetsPerS = float64(s.Patches)/sec, float64(s.Retargets)/sec, float64(s.Resets)/sec
	lats := make([]demoLatency, nPatchOps)
	for k := range lats {
		r := &st.all[k]
		sorted := slices.Sorted(slices.Values(r.s))
		us := func(p float64) float64 { return float64(latencyPercentile(sorted, p).Nanoseconds()) / 1e3 }
		lats[k] = demoLatency{P50: us(0.5), P90: us(0.9), P99: us(0.99), Max: float64(r.max.Nanoseconds()) / 1e3, N: len(sorted)}
	}
	s.Patch, s.Retarget, s.Reset = lats[opPatch], lats[opRetarget], lats[opReset]
	for t, r := range d.redirects() {
		tg, n := d.targets[t], st.perTarget[t]
		name := r.Func
		if name == "" {
			name = tg.name
		}
		s.Functions = append(s.Functions, demoFunction{
			Name: name, Shape: tg.shape, Tactic: r.Tactic, Impls: tg.impls,
			Patches: n[opPatch], Retargets: n[opRetarget], Resets: n[opReset],
		})
	}
	d.wrong.mu.Lock()
	s.WrongResults = slices.Clone(d.wrong.samples)
	d.wrong.mu.Unlock()
	return s
}

func (d *demoRun) printSummary(s *demoSummary) {
	w := d.cfg.out
	if d.cfg.json {
		writeJSONLine(w, s)
		return
	}
	prof := "on"
	if !s.CPUProfiler {
		prof = "already running elsewhere"
	}
	fmt.Fprintf(w, "\nsummary: %.1fs, %d workers, GOMAXPROCS %d, CPU profiler %s, %d GCs\n", s.Seconds, s.Workers, s.GOMAXPROCS, prof, s.GCs)
	fmt.Fprintf(w, "  %-18s %12s %10s\n", "", "total", "per s")
	for _, row := range []struct {
		name string
		n    uint64
		rate float64
	}{
		{"calls", s.Calls, s.CallsPerS},
		{"patches", s.Patches, s.PatchesPerS},
		{"retargets", s.Retargets, s.RetargetsPerS},
		{"resets", s.Resets, s.ResetsPerS},
	} {
		fmt.Fprintf(w, "  %-18s %12d %10s\n", row.name, row.n, fmtCount(row.rate))
	}
	fmt.Fprintf(w, "  %-18s %12d\n  %-18s %12d\n", "wrong results", s.Wrong, "failed Set/Reset", s.Failures)

	fmt.Fprintf(w, "\n  %-10s %9s %9s %9s %9s %8s\n", "latency", "p50", "p90", "p99", "max", "samples")
	for _, row := range []struct {
		name string
		l    demoLatency
	}{{"patch", s.Patch}, {"retarget", s.Retarget}, {"reset", s.Reset}} {
		us := func(v float64) string { return fmtLatency(time.Duration(v * 1e3)) }
		fmt.Fprintf(w, "  %-10s %9s %9s %9s %9s %8d\n", row.name, us(row.l.P50), us(row.l.P90), us(row.l.P99), us(row.l.Max), row.l.N)
	}

	fmt.Fprintf(w, "\n  %-28s %-36s %-14s %8s %9s %7s\n", "function", "shape", "tactic", "patches", "retargets", "resets")
	for _, f := range s.Functions {
		fmt.Fprintf(w, "  %-28s %-36s %-14s %8d %9d %7d\n", f.Name, f.Shape, f.Tactic, f.Patches, f.Retargets, f.Resets)
	}
	for _, e := range s.Errors {
		fmt.Fprintf(w, "  FAILED: %s\n", e)
	}
	for _, e := range s.WrongResults {
		fmt.Fprintf(w, "  WRONG: %s\n", e)
	}
}

func writeJSONLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the demo's own types always marshal
	}
	w.Write(append(b, '\n'))
}

func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtLatency(d time.Duration) string { return fmtNanos(float64(d.Nanoseconds())) }

// fmtNanos prints a duration in nanoseconds with the unit that fits, for
// the demo's latencies and the bench's costs alike.
func fmtNanos(ns float64) string {
	us := ns / 1e3
	switch {
	case ns == 0:
		return "-"
	case ns < 1e3:
		return fmt.Sprintf("%.2fns", ns)
	case us < 10:
		return fmt.Sprintf("%.1fµs", us)
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.1fms", us/1e3)
}
