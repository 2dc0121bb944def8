package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"text/tabwriter"

	"github.com/switchboard-go/switchboard/bench"
	"github.com/switchboard-go/switchboard/dispatch"
)

// benchRow is one line of the bench report, and one JSON object.
type benchRow struct {
	Kind     string  `json:"kind"` // "call", "write" or "batch"
	Name     string  `json:"name"`
	NsMedian float64 `json:"ns_median"`
	NsMin    float64 `json:"ns_min"`
	NsMax    float64 `json:"ns_max"`
	// Ratio to a direct call timed in the same round ("call" rows).
	RatioMedian float64 `json:"ratio_median,omitempty"`
	RatioMin    float64 `json:"ratio_min,omitempty"`
	RatioMax    float64 `json:"ratio_max,omitempty"`
	Rounds      int     `json:"rounds"`
	// Functions in the batch and code pages they are on ("batch" rows).
	Funcs int `json:"funcs,omitempty"`
	Pages int `json:"pages,omitempty"`
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	rounds := fs.Int("rounds", 7, "rounds; each figure is the median over them, with min-max")
	calls := fs.Int("calls", 20_000_000, "calls per variant per round")
	writes := fs.Int("writes", 2_000, "Set/Reset pairs and retargets per round")
	asJSON := fs.Bool("json", false, "print one JSON object per row")
	batch := fs.Int("batch", 10_000, "functions in the generated batch program (0: no batch rows)")
	batchRuns := fs.Int("batch-runs", 3, "runs of the batch program")
	routes := fs.String("routes", "", "instead of the call rows, for each count N (comma-separated, e.g. 1,100,1000,10000)\n"+
		"build a program with N distinct patched functions called in straight-line code and\n"+
		"report site mode, a func variable and direct calls as ratios to direct calls")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *rounds < 1 || *calls < 1 || *writes < 1 || *batch < 0 || *batchRuns < 1 {
		return fmt.Errorf("usage: switchboard bench [-rounds N] [-calls N] [-writes N] [-batch N] [-batch-runs N] [-routes N,N,...] [-json]")
	}
	if *routes != "" {
		counts, err := parseRoutes(*routes)
		if err != nil {
			return err
		}
		rows, err := measureRoutes(counts, *rounds, *calls, os.Stderr)
		if err != nil {
			return err
		}
		return printRoutes(os.Stdout, rows, *asJSON)
	}
	rows, err := measure(*rounds, *calls, *writes, os.Stderr)
	if err != nil {
		return err
	}
	if *batch > 0 {
		b, err := measureBatch(*batch, *batchRuns, os.Stderr)
		if err != nil {
			return err
		}
		rows = append(rows, b...)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	printBench(os.Stdout, rows, *rounds, *calls)
	return nil
}

// measure runs every round: all call variants (each against a direct call
// in the same round), then the write costs.
func measure(rounds, calls, writes int, progress io.Writer) ([]benchRow, error) {
	type samples struct{ ns, ratio []float64 }
	byName := map[string]*samples{}
	var order []string
	add := func(kind, name string, ns, ratio float64) {
		key := kind + "\x00" + name
		s := byName[key]
		if s == nil {
			s = &samples{}
			byName[key] = s
			order = append(order, key)
		}
		s.ns = append(s.ns, ns)
		s.ratio = append(s.ratio, ratio)
	}
	for r := range rounds {
		fmt.Fprintf(progress, "round %d/%d\n", r+1, rounds)
		for _, v := range bench.Variants() {
			undo, err := v.Setup()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.Name, err)
			}
			if err := bench.Check(v); err != nil {
				undo()
				return nil, err
			}
			ns, ratio := bench.Ratio(v, calls)
			if err := undo(); err != nil {
				return nil, fmt.Errorf("%s: undo: %w", v.Name, err)
			}
			add("call", v.Name, ns, ratio)
		}
		first, reset := bench.SetResetCost(writes)
		add("write", "first Set (code written)", float64(first.Nanoseconds()), 0)
		add("write", "retarget Set (pointer store)", float64(bench.RetargetCost(writes).Nanoseconds()), 0)
		add("write", "Reset (code restored)", float64(reset.Nanoseconds()), 0)
	}
	var rows []benchRow
	for _, key := range order {
		s := byName[key]
		kind, name, _ := cut(key)
		row := benchRow{Kind: kind, Name: name, Rounds: len(s.ns)}
		row.NsMedian, row.NsMin, row.NsMax = stats(s.ns)
		if kind == "call" {
			row.RatioMedian, row.RatioMin, row.RatioMax = stats(s.ratio)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func printRoutes(w io.Writer, rows []routesRow, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(w, "switchboard bench -routes: %s, N distinct functions called in straight-line code, ratios to direct calls in the same round\n\n", runtime.Version())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "routes\tvariant\tns/call\tx direct\tmin-max\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.2f\t%.2f-%.2f\t\n", r.Routes, r.Name, r.NsMedian, r.RatioMedian, r.RatioMin, r.RatioMax)
	}
	return tw.Flush()
}

func cut(key string) (string, string, bool) {
	for i := range key {
		if key[i] == 0 {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

// stats returns the median, min and max.
func stats(xs []float64) (median, lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

func printBench(w io.Writer, rows []benchRow, rounds, calls int) {
	fmt.Fprintf(w, "switchboard bench: %s, GOMAXPROCS %d, %d rounds; call rows: %d calls of func(int) int per round\n",
		runtime.Version(), runtime.GOMAXPROCS(0), rounds, calls)
	fmt.Fprintf(w, "code writes serialize cores with %s\n\n", dispatch.SyncMethod())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "call\tns/call\tx direct\tmin-max\t")
	for _, r := range rows {
		if r.Kind == "call" {
			fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f-%.2f\t\n", r.Name, r.NsMedian, r.RatioMedian, r.RatioMin, r.RatioMax)
		}
	}
	fmt.Fprintln(tw, "\t\t\t\t")
	fmt.Fprintln(tw, "write / batch\tmedian\tmin\tmax\t")
	for _, r := range rows {
		if r.Kind != "call" {
			name := r.Name
			if r.Kind == "batch" {
				name = "batch, " + name
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, fmtNanos(r.NsMedian), fmtNanos(r.NsMin), fmtNanos(r.NsMax))
		}
	}
	tw.Flush()
}
