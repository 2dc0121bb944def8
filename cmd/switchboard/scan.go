package main

import (
	"bufio"
	"cmp"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/arch/x86/x86asm"

	"github.com/switchboard-go/switchboard"
	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/unwind"
)

// scanResult is what dispatch would do to one function at run time:
// exactly one of patch and refusal is set.
type scanResult struct {
	fn      dispatch.Func
	patch   *dispatch.Patch
	refusal *dispatch.RefusalError
	// original is why registry.Original would refuse the function, from
	// its code alone (nil: it works); the refusal itself when the
	// function cannot be patched at all.
	original error
	// policy is registry's verdict before planning (registry.Check for Go
	// code, registry.CheckC for C): nil when Set (SetC) would accept the
	// function given an impl of its type, else its *registry.Error.
	policy error
}

// scanReport is the outcome for every function of one binary, in address
// order.
type scanReport struct {
	path    string
	results []scanResult
	elapsed time.Duration
}

func runScan(args []string) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per function (JSON lines); the summary goes to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: switchboard scan [-json] [BINARY]\n\n"+
			"Plans a patch for every function of an ELF Go binary (default: this one)\n"+
			"and reports the tactic, or why dispatch would refuse it, and what\n"+
			"registry's policy says of it (registry.Check, registry.CheckC).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return fmt.Errorf("want at most one binary, got %d arguments", fs.NArg())
	}
	var rep *scanReport
	var err error
	if fs.NArg() == 0 {
		rep, err = scanSelf(os.Stderr)
	} else {
		rep, err = scanBinary(fs.Arg(0), os.Stderr)
	}
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	if *asJSON {
		err = rep.writeJSON(out)
		rep.writeTotals(os.Stderr)
	} else {
		rep.writeText(out)
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// sharedBase is where scan places a shared object (a Go plugin, a c-shared
// library): the loader maps one high, near 0x7f0000000000 on x86-64 Linux,
// never at its link-time address 0, where no relay page could sit below it.
const sharedBase uint64 = 0x7f0000000000

// scanBinary plans every function of the ELF binary at path, against a
// paper address space holding its load segments: an executable (PIE too)
// at its link-time addresses, a shared object at sharedBase.
func scanBinary(path string, progress io.Writer) (*scanReport, error) {
	bias, err := scanBias(path)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	im, err := unwind.OpenAt(path, bias)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	funcs := im.Funcs()
	if len(funcs) == 0 {
		return nil, fmt.Errorf("scan %s: no functions", path)
	}
	space := &dispatch.Simulated{}
	for _, r := range im.Loads() {
		space.Taken = append(space.Taken, dispatch.Range{Start: r.Start, End: r.End})
	}
	// The binary's own dispatcher address is unknown here, so stand in its
	// text start: the dispatcher lives in the text, and its address only
	// decides whether a site calls it with rel32 or through the page's
	// pointer, never the tactic or the prologue patch.
	text := funcs[0].Entry
	return scanImage(im, space, text, text, text, text, progress)
}

// scanBias is where scan loads the binary at path: 0 for an executable,
// sharedBase for a shared object (ET_DYN with no program interpreter).
func scanBias(path string) (uintptr, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		return 0, nil
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return 0, nil // a PIE executable
		}
	}
	base := sharedBase // a variable: on a 32-bit host (where scan plans nothing) it truncates
	return uintptr(base), nil
}

// scanSelf plans every function of the running binary at its load address,
// against this process's mappings and with the real dispatcher entries: what
// the patcher would do here and now, without writing anything.
func scanSelf(progress io.Writer) (*scanReport, error) {
	im, err := unwind.Self()
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	busy, err := dispatch.Process{}.Busy()
	if err != nil {
		return nil, fmt.Errorf("scan: reading this process's mappings: %w", err)
	}
	space := &dispatch.Simulated{Taken: busy}
	rep, err := scanImage(im, space, switchboard.DispatcherPC(), switchboard.CallDispatcherPC(), switchboard.SlotDispatcherPC(), switchboard.NilFaultPC(), progress)
	if err != nil {
		return nil, err
	}
	if exe, err := os.Executable(); err == nil {
		rep.path = exe
	}
	return rep, nil
}

// scanImage plans the image's functions in address order, with one planner
// that reserves relay sites (and trampolines) as it goes, as the live
// patcher does.
func scanImage(im *unwind.Image, space *dispatch.Simulated, disp, callDisp, slotDisp, nilFault uintptr, progress io.Writer) (*scanReport, error) {
	start := time.Now()
	pl := dispatch.NewPlanner(space, disp, callDisp)
	pl.NilFault, pl.SlotDispatcher = nilFault, slotDisp
	pl.IsMorestack = func(pc uintptr) bool {
		f, ok := im.Lookup(pc)
		return ok && strings.HasPrefix(f.Name, "runtime.morestack")
	}
	funcs := im.Funcs()
	rep := &scanReport{path: im.Path, results: make([]scanResult, 0, len(funcs))}
	last := start
	for i, f := range funcs {
		b, err := im.Bytes(f)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", im.Path, err)
		}
		df := dispatch.Func{Name: f.Name, Entry: f.Entry, Size: f.Size, Bytes: b}
		var r scanResult
		if f.Go {
			r, err = scanFunc(pl, df)
			r.policy = registry.Check(im, f.Entry)
		} else {
			policy := registry.CheckC(im.Path, f.Name)
			r, err = scanCFunc(pl, df, policy)
			r.policy = policy
		}
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", im.Path, err)
		}
		rep.results = append(rep.results, r)
		if progress != nil && time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "scan: %d of %d functions\n", i+1, len(funcs))
		}
	}
	rep.elapsed = time.Since(start)
	return rep, nil
}

// scanFunc plans one function in site mode, and its Original trampoline.
// A refusal is a result; any other error means the scan itself failed.
// The function's Go type is unknown here, so the Original stub's limit on
// stack arguments is not checked.
func scanFunc(pl *dispatch.Planner, f dispatch.Func) (scanResult, error) {
	p, err := pl.Plan(f, dispatch.SiteMode)
	if err == nil {
		_, oerr := pl.PlanTrampoline(f)
		var ref *dispatch.RefusalError
		if oerr != nil && !errors.As(oerr, &ref) {
			return scanResult{}, fmt.Errorf("planning the trampoline of %s: %w", f.Name, oerr)
		}
		return scanResult{fn: f, patch: p, original: oerr}, nil
	}
	var ref *dispatch.RefusalError
	if errors.As(err, &ref) {
		return scanResult{fn: f, refusal: ref, original: ref}, nil
	}
	return scanResult{}, fmt.Errorf("planning %s: %w", f.Name, err)
}

// originalWhy is the original field of a function's JSON line: "" when
// registry.Original works for it, else the reason it refuses.
func (r scanResult) originalWhy() string {
	var ref *dispatch.RefusalError
	switch {
	case r.original == nil:
		return ""
	case errors.As(r.original, &ref):
		return string(ref.Reason) + ": " + oneLine(ref.Detail)
	}
	return oneLine(r.original.Error())
}

// originalKind groups Original refusals of patchable functions for the
// summary.
func originalKind(err error) string {
	var ref *dispatch.RefusalError
	if !errors.As(err, &ref) {
		return "other"
	}
	d := ref.Detail
	switch {
	case strings.Contains(d, "is a call"):
		return "call first"
	case strings.Contains(d, "and an index"):
		return "indexed load"
	case strings.Contains(d, "writes first"):
		return "load after a copied write"
	case strings.Contains(d, "cannot nil-check"):
		return "unchecked address"
	case strings.Contains(d, "jumps into the copied"):
		return "branch into the copy"
	case strings.Contains(d, "reach"):
		return "out of reach"
	}
	return string(ref.Reason)
}

// scanRow is the JSON line of one function. Exactly one of the embedded
// parts is present.
type scanRow struct {
	Name  string `json:"name"`
	Entry string `json:"entry"`
	Size  int    `json:"size"`
	Room  int    `json:"room"`
	// Original is "" when registry.Original works for the function,
	// otherwise why it refuses.
	Original string `json:"original"`
	// Registry is "" when registry's policy accepts the function: Set
	// (SetC for C code) given an impl of its type would refuse it for no
	// reason but the planner's, which refused says. Otherwise it is the
	// sentinel's short name and the reason, "protected: package runtime is
	// part of the runtime" (see registryWhy).
	Registry string `json:"registry"`
	*patchRow
	*refusalRow
}

type patchRow struct {
	Tactic string `json:"tactic"`
	Offset int    `json:"offset"`
	// PatchHex is what the function's first bytes become, from the entry:
	// the original bytes before Offset, then the patch.
	PatchHex string `json:"patch_hex"`
	Pins     string `json:"pins"`
	Site     string `json:"site"`
	SiteHex  string `json:"site_hex"`
	// Evict is the second jump and stub of an evict-jump patch.
	Evict *evictRow `json:"evict,omitempty"`
}

// evictRow is an evicted instruction: the jump written at its offset
// (inside patch_hex's rel32 and possibly past it) and the stub it leads to.
type evictRow struct {
	Offset  int    `json:"offset"`
	JumpHex string `json:"jump_hex"`
	Stub    string `json:"stub"`
	StubHex string `json:"stub_hex"`
	// NilCheck names the register the stub tests before an evicted
	// memory access (jz to the nil-fault stub); absent when none.
	NilCheck string `json:"nil_check,omitempty"`
	// Next is the next evicted instruction of a chain, whose jump starts
	// inside this one's; absent at the chain's end.
	Next *evictRow `json:"next,omitempty"`
}

type refusalRow struct {
	Refused string `json:"refused"`
	Detail  string `json:"detail"`
}

// evictRows is an eviction chain as nested rows; nil for none.
func evictRows(ev *dispatch.Eviction) *evictRow {
	if ev == nil {
		return nil
	}
	row := &evictRow{Offset: ev.Offset, JumpHex: hex.EncodeToString(ev.Jump),
		Stub: fmt.Sprintf("%#x", ev.Addr), StubHex: hex.EncodeToString(ev.Code), Next: evictRows(ev.Next)}
	if ev.NilCheck != 0 {
		row.NilCheck = strings.ToLower(ev.NilCheck.String())
	}
	return row
}

func (r scanResult) row() scanRow {
	row := scanRow{Name: r.fn.Name, Entry: fmt.Sprintf("%#x", r.fn.Entry), Size: r.fn.Size, Room: len(r.fn.Bytes), Original: r.originalWhy(), Registry: registryWhy(r.policy)}
	if p := r.patch; p != nil {
		// Copy: fn.Bytes aliases the binary's text.
		written := append(slices.Clone(r.fn.Bytes[:p.Offset]), p.Bytes...)
		row.patchRow = &patchRow{
			Tactic: p.Tactic.String(), Offset: p.Offset, PatchHex: hex.EncodeToString(written),
			Pins: p.Pins.String(), Site: fmt.Sprintf("%#x", p.Site), SiteHex: hex.EncodeToString(p.SiteCode),
		}
		row.patchRow.Evict = evictRows(p.Evict)
	} else {
		row.refusalRow = &refusalRow{Refused: string(r.refusal.Reason), Detail: oneLine(r.refusal.Detail)}
	}
	return row
}

// oneLine joins the lines of a detail, which may list every tactic tried,
// so that every report stays one line per function.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func (rep *scanReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // generic names hold brackets, and some hold < or &
	for _, r := range rep.results {
		if err := enc.Encode(r.row()); err != nil {
			return err
		}
	}
	return nil
}

// scanCount is how many functions share one tactic or reason.
type scanCount struct {
	name string
	n    int
}

// totals counts the functions per tactic, in the order dispatch tries them,
// and per refusal reason, most frequent first.
func (rep *scanReport) totals() (tactics, reasons []scanCount, patched int) {
	byTactic := map[dispatch.Tactic]int{}
	byReason := map[dispatch.Reason]int{}
	for _, r := range rep.results {
		if r.patch != nil {
			byTactic[r.patch.Tactic]++
			patched++
		} else {
			byReason[r.refusal.Reason]++
		}
	}
	for _, t := range allTactics() {
		tactics = append(tactics, scanCount{t.String(), byTactic[t]})
	}
	for r, n := range byReason {
		reasons = append(reasons, scanCount{string(r), n})
	}
	slices.SortFunc(reasons, func(a, b scanCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name))
	})
	return tactics, reasons, patched
}

// coverage is the planner's coverage: the share of functions dispatch
// would patch, whatever registry's policy says of them (issue 8's target
// is about this one).
func (rep *scanReport) coverage() float64 {
	_, _, patched := rep.totals()
	return share(patched, len(rep.results))
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// relayPages counts the distinct relay pages the sites landed on.
func (rep *scanReport) relayPages() int {
	pages := map[uintptr]bool{}
	for _, r := range rep.results {
		if r.patch != nil {
			pages[r.patch.Site&^0xfff] = true
		}
	}
	return len(pages)
}

// writeTotals writes the shares per tactic and per reason, and the coverage.
func (rep *scanReport) writeTotals(w io.Writer) {
	tactics, reasons, patched := rep.totals()
	all := len(rep.results)
	fmt.Fprintf(w, "%s: %d functions in %.2fs, %d relay pages\n\n", rep.path, all, rep.elapsed.Seconds(), rep.relayPages())
	line := func(name string, n int) {
		fmt.Fprintf(w, "  %-18s %7d %8.2f%%\n", name, n, 100*share(n, all))
	}
	fmt.Fprintf(w, "  %-18s %7s %9s\n", "tactic", "funcs", "share")
	for _, c := range tactics {
		line(c.name, c.n)
	}
	line("refused", all-patched)
	for _, c := range reasons {
		line("  "+c.name, c.n)
	}
	line("planner coverage", patched)

	// Original, as a share of the patchable functions.
	kinds := map[string]int{}
	orig := 0
	for _, r := range rep.results {
		if r.patch == nil {
			continue
		}
		if r.original == nil {
			orig++
		} else {
			kinds[originalKind(r.original)]++
		}
	}
	fmt.Fprintf(w, "\n  %-28s %7d %8.2f%% of patchable\n", "Original works", orig, 100*share(orig, patched))
	var ks []scanCount
	for k, n := range kinds {
		ks = append(ks, scanCount{k, n})
	}
	slices.SortFunc(ks, func(a, b scanCount) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name)) })
	for _, k := range ks {
		fmt.Fprintf(w, "  %-28s %7d %8.2f%%\n", "  refused: "+k.name, k.n, 100*share(k.n, patched))
	}
	rep.writePolicyTotals(w)
}

// originalCoverage is the share of patchable functions Original works for.
func (rep *scanReport) originalCoverage() float64 {
	n, of := 0, 0
	for _, r := range rep.results {
		if r.patch != nil {
			of++
			if r.original == nil {
				n++
			}
		}
	}
	return share(n, of)
}

// writeText is the human report: the totals, then every refused function
// with its first instructions, grouped by reason. Write errors surface
// when the caller flushes w.
func (rep *scanReport) writeText(w io.Writer) {
	rep.writeTotals(w)
	_, reasons, _ := rep.totals()
	for _, c := range reasons {
		fmt.Fprintf(w, "\nrefused, %s (%d):\n", c.name, c.n)
		for _, r := range rep.results {
			if r.refusal != nil && string(r.refusal.Reason) == c.name {
				writeRefusal(w, r)
			}
		}
	}
}

// refusalInsts is how many instructions a refusal shows: usually enough
// to cover the 8-byte quadword a patch must fit.
const refusalInsts = 4

func writeRefusal(w io.Writer, r scanResult) {
	f := r.fn
	fmt.Fprintf(w, "  %s %#x size %d room %d: %s\n", f.Name, f.Entry, f.Size, len(f.Bytes), oneLine(r.refusal.Detail))
	for _, l := range disasm(f, refusalInsts) {
		fmt.Fprintf(w, "      %s\n", l)
	}
}

// disasm shows the function's first n instructions, one line each:
// offset, bytes, Intel syntax.
func disasm(f dispatch.Func, n int) []string {
	var out []string
	code := f.Bytes[:min(f.Size, len(f.Bytes))]
	for off := 0; off < len(code) && len(out) < n; {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil || in.Len == 0 {
			out = append(out, fmt.Sprintf("+%-3d %-24s (bad: %v)", off, fmt.Sprintf("% x", code[off:min(off+8, len(code))]), err))
			break
		}
		text := x86asm.IntelSyntax(in, uint64(f.Entry)+uint64(off), nil)
		out = append(out, fmt.Sprintf("+%-3d %-24s %s", off, fmt.Sprintf("% x", code[off:off+in.Len]), text))
		off += in.Len
	}
	return out
}
