package main

import (
	"fmt"
	"io"
	"os"

	"github.com/switchboard-go/switchboard/bench"
)

// measureBatch builds the generated program with n functions once, runs it
// runs times and returns one "batch" row per figure: wall times of first
// use, Stage, Commit and Undo (and of a second Commit and Undo, whose plans
// and sites exist), and the CPU time of Commit and Undo. Funcs and Pages
// say how many functions and code pages the batch covered.
func measureBatch(n, runs int, progress io.Writer) ([]benchRow, error) {
	module, err := bench.ModuleDir()
	if err != nil {
		return nil, fmt.Errorf("batch rows need the module's source: run from inside it: %w", err)
	}
	dir, err := os.MkdirTemp("", "switchboard-batch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(progress, "batch: building a program with %d functions\n", n)
	bin, err := bench.BuildBatchProgram(dir, module, n)
	if err != nil {
		return nil, err
	}
	var rs []bench.BatchRun
	for i := range runs {
		fmt.Fprintf(progress, "batch: run %d/%d\n", i+1, runs)
		r, err := bench.RunBatchProgram(bin)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	figures := []struct {
		name string
		get  func(bench.BatchRun) int64
	}{
		{"first use", func(r bench.BatchRun) int64 { return r.FirstUse }},
		{fmt.Sprintf("stage %d", n), func(r bench.BatchRun) int64 { return r.Stage }},
		{fmt.Sprintf("commit %d", n), func(r bench.BatchRun) int64 { return r.Commit }},
		{fmt.Sprintf("commit %d, CPU", n), func(r bench.BatchRun) int64 { return r.CommitCPU }},
		{fmt.Sprintf("undo %d", n), func(r bench.BatchRun) int64 { return r.Undo }},
		{fmt.Sprintf("undo %d, CPU", n), func(r bench.BatchRun) int64 { return r.UndoCPU }},
		{fmt.Sprintf("recommit %d", n), func(r bench.BatchRun) int64 { return r.Recommit }},
		{fmt.Sprintf("reundo %d", n), func(r bench.BatchRun) int64 { return r.Reundo }},
	}
	var rows []benchRow
	for _, f := range figures {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = float64(f.get(r))
		}
		row := benchRow{Kind: "batch", Name: f.name, Rounds: len(rs), Funcs: rs[0].Funcs, Pages: rs[0].Pages}
		row.NsMedian, row.NsMin, row.NsMax = stats(xs)
		rows = append(rows, row)
	}
	return rows, nil
}
