package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func batchProgramFor(tb testing.TB, n int) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds a generated program")
	}
	module, err := ModuleDir()
	if err != nil {
		tb.Skip(err)
	}
	bin, err := BuildBatchProgram(tb.TempDir(), module, n)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// TestBatchWritesGroupedPerPage counts, with strace as the oracle, the
// protection changes and core serializations of the generated program:
// two Commits and two Undos of one batch of 1,000 functions. Per code page
// each Commit and Undo makes it RWX once and RX again; a relay page is
// mapped read-write and made RX once, never RWX. Every site is a slot,
// written with its page before it was ever executable, so each Commit and
// Undo serializes cores once, for the prologues. Writing per function
// would take thousands.
func TestBatchWritesGroupedPerPage(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("no strace")
	}
	bin := batchProgramFor(t, 1000)
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-e", "trace=mprotect,membarrier", "-o", trace, bin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
	var r BatchRun
	if r, err = parseBatchRun(out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var rwx, rx, sync int
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(line, "mprotect(") && strings.Contains(line, "PROT_READ|PROT_WRITE|PROT_EXEC"):
			rwx++
		case strings.Contains(line, "mprotect(") && strings.Contains(line, "PROT_READ|PROT_EXEC"):
			// Not ")": strace may split a call across lines (<unfinished ...>).
			rx++
		case strings.Contains(line, "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE"):
			sync++
		}
	}
	t.Logf("%d functions on %d code pages, sites on %d relay pages: %d RWX and %d RX mprotects, %d SYNC_CORE membarriers", r.Funcs, r.Pages, r.RelayPages, rwx, rx, sync)
	if r.Pages == 0 || r.RelayPages == 0 || r.Pages*4 > r.Funcs {
		t.Fatalf("implausible layout: %+v", r)
	}
	if want := 4 * r.Pages; rwx != want {
		t.Errorf("%d RWX mprotects, want %d", rwx, want)
	}
	if want := 4*r.Pages + r.RelayPages; rx != want {
		t.Errorf("%d RX mprotects, want %d", rx, want)
	}
	if sync != 4 {
		t.Errorf("%d SYNC_CORE membarriers, want 4", sync)
	}
}

// BenchmarkBatch10000 runs the generated program with 10,000 functions:
// ns/op is one run; the metrics are its Commit and Undo.
func BenchmarkBatch10000(b *testing.B) {
	bin := batchProgramFor(b, 10_000)
	var commit, undo, commitCPU float64
	for b.Loop() {
		r, err := RunBatchProgram(bin)
		if err != nil {
			b.Fatal(err)
		}
		commit += float64(r.Commit)
		undo += float64(r.Undo)
		commitCPU += float64(r.CommitCPU)
	}
	n := float64(b.N)
	b.ReportMetric(commit/n/1e6, "commit-ms")
	b.ReportMetric(commitCPU/n/1e6, "commit-cpu-ms")
	b.ReportMetric(undo/n/1e6, "undo-ms")
}
