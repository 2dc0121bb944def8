package gomonkeybench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/agiledragon/gomonkey/v2"
	"github.com/switchboard-go/switchboard/registry"
)

// The flip storm of docs/design.md section 8:
//
//   - three goroutines call victim(1) in a loop and check that the result
//     is the old value or the new one;
//   - another goroutine runs runtime.GC() every millisecond;
//   - the CPU profiler is on, GOMAXPROCS is 4;
//   - the main goroutine patches and unpatches victim as fast as it can
//     for FLIP_SECONDS (default 5) seconds.
//
// A flip is one change of the victim's code: a patch or an unpatch. One
// patch+unpatch cycle is two flips.
//
// Each storm runs in a child process (this test binary, re-executed with
// FLIP_CHILD naming the storm), because gomonkey is expected to crash it.
// The child keeps its counters in a file it maps MAP_SHARED, so the parent
// reads exact counts even after the child died of a signal.

const (
	envChild    = "FLIP_CHILD"    // storm to run in this (child) process
	envCounters = "FLIP_COUNTERS" // file the child maps for its counters
	envSeconds  = "FLIP_SECONDS"  // storm duration, default 5
	envRuns     = "FLIP_RUNS"     // storms of each kind, default 1
	envLogDir   = "FLIP_LOG_DIR"  // if set, each child's full output is kept there
)

// Counter slots, one per 64-byte line of the shared file.
const (
	slotState   = iota * 8 // 1 once the storm started, 2 once it ended cleanly
	slotElapsed            // ns since the storm started, at the last flip
	slotFlips
	slotGCs
	slotBad       // first wrong result + 1 (0: none)
	slotFirstFlip // ns taken by the first flip (Switchboard plans the patch then)
	slotMaxFlip   // ns taken by the slowest later flip
	slotCalls
	slotWrong = slotCalls + 3*8
	slotEnd   = slotWrong + 3*8

	counterBytes = 4096
)

const (
	callers     = 3
	publishMask = 1<<10 - 1 // callers publish their counts every 1024 calls
)

func stormSeconds() (time.Duration, error) {
	s := os.Getenv(envSeconds)
	if s == "" {
		return 5 * time.Second, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number of seconds", envSeconds, s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// storm is one kind of patcher under test.
type storm struct {
	name    string
	caller  func(stop *atomic.Bool, calls, wrong, bad *uint64)
	patch   func() error
	unpatch func() error
}

func storms() map[string]storm {
	var p *gomonkey.Patches
	return map[string]storm{
		"gomonkey": {
			name:   "gomonkey",
			caller: callGomonkey,
			patch: func() error {
				p = gomonkey.ApplyFunc(stormGomonkey, implStorm)
				return nil
			},
			unpatch: func() error {
				p.Reset()
				return nil
			},
		},
		"switchboard": {
			name:    "switchboard",
			caller:  callSwitchboard,
			patch:   func() error { return registry.Set(stormSwitchboard, implStorm) },
			unpatch: func() error { return registry.Reset(stormSwitchboard) },
		},
	}
}

// check counts one result; it is inlined into the caller loops.
func check(v int, n uint64, calls, wrong, bad *uint64, nwrong *uint64) {
	if v != oldValue && v != newValue {
		*nwrong++
		atomic.StoreUint64(wrong, *nwrong)
		atomic.CompareAndSwapUint64(bad, 0, uint64(v)+1)
	}
	if n&publishMask == 0 {
		atomic.StoreUint64(calls, n)
	}
}

func callGomonkey(stop *atomic.Bool, calls, wrong, bad *uint64) {
	var n, nwrong uint64
	for !stop.Load() {
		n++
		check(stormGomonkey(1), n, calls, wrong, bad, &nwrong)
	}
	atomic.StoreUint64(calls, n)
}

func callSwitchboard(stop *atomic.Bool, calls, wrong, bad *uint64) {
	var n, nwrong uint64
	for !stop.Load() {
		n++
		check(stormSwitchboard(1), n, calls, wrong, bad, &nwrong)
	}
	atomic.StoreUint64(calls, n)
}

// TestFlipChild is the storm itself. It runs only in a child process
// started by TestFlipStorm (or by hand: FLIP_CHILD=switchboard go test
// -run TestFlipChild -v).
func TestFlipChild(t *testing.T) {
	kind := os.Getenv(envChild)
	if kind == "" {
		t.Skip("runs in a child process of TestFlipStorm")
	}
	s, ok := storms()[kind]
	if !ok {
		t.Fatalf("%s=%q: unknown storm", envChild, kind)
	}
	d, err := stormSeconds()
	if err != nil {
		t.Fatal(err)
	}
	ctr := counters(t)

	runtime.GOMAXPROCS(4)
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatal(err)
	}
	defer pprof.StopCPUProfile()

	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { s.caller(&stop, &ctr[slotCalls+8*i], &ctr[slotWrong+8*i], &ctr[slotBad]) })
	}
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for !stop.Load() {
			<-tick.C
			runtime.GC()
			atomic.AddUint64(&ctr[slotGCs], 1)
		}
	})

	fmt.Printf("flip storm %s: start, %v, GOMAXPROCS %d\n", kind, d, runtime.GOMAXPROCS(0))
	start := time.Now()
	atomic.StoreUint64(&ctr[slotState], 1)
	var flips uint64
	var ferr error
	last := time.Duration(0)
	flipped := func() {
		flips++
		now := time.Since(start)
		atomic.StoreUint64(&ctr[slotFlips], flips)
		atomic.StoreUint64(&ctr[slotElapsed], uint64(now))
		if took := uint64(now - last); flips == 1 {
			atomic.StoreUint64(&ctr[slotFirstFlip], took)
		} else if took > ctr[slotMaxFlip] {
			atomic.StoreUint64(&ctr[slotMaxFlip], took)
		}
		last = now
	}
	for time.Since(start) < d && ferr == nil {
		if ferr = s.patch(); ferr != nil {
			ferr = fmt.Errorf("patch #%d: %w", flips/2+1, ferr)
			break
		}
		flipped()
		if ferr = s.unpatch(); ferr != nil {
			ferr = fmt.Errorf("unpatch #%d: %w", flips/2+1, ferr)
			break
		}
		flipped()
	}
	if ferr != nil && flips%2 == 1 {
		_ = s.unpatch() // leave the victim unpatched before stopping
	}
	stop.Store(true)
	wg.Wait()
	if ferr != nil {
		t.Fatal(ferr)
	}
	var calls, wrong uint64
	for i := range callers {
		calls += atomic.LoadUint64(&ctr[slotCalls+8*i])
		wrong += atomic.LoadUint64(&ctr[slotWrong+8*i])
	}
	atomic.StoreUint64(&ctr[slotState], 2)
	fmt.Printf("flip storm %s: done, %d flips, %d calls, %d wrong, %d GCs in %v\n",
		kind, flips, calls, wrong, atomic.LoadUint64(&ctr[slotGCs]), time.Since(start).Round(time.Millisecond))
	if wrong > 0 {
		t.Fatalf("%d wrong results, first %d", wrong, atomic.LoadUint64(&ctr[slotBad])-1)
	}
}

// counters maps the parent's counter file, or a private page when the
// child runs by hand.
func counters(t *testing.T) []uint64 {
	var mem []byte
	if path := os.Getenv(envCounters); path != "" {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		mem, err = syscall.Mmap(int(f.Fd()), 0, counterBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		mem, err = syscall.Mmap(-1, 0, counterBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			t.Fatal(err)
		}
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), counterBytes/8)
}

// outcome is what became of one child storm.
type outcome struct {
	kind                 string
	started, clean, hung bool
	exit                 string // "exit status 2", "killed by SIGSEGV (segmentation fault)", ...
	crash                string // the first line of the crash report, if any
	report               []string
	elapsed              time.Duration // since the storm started, at the last completed flip
	flips, calls, wrong  uint64
	gcs, firstBad        uint64
	firstFlip, maxFlip   time.Duration
	output               []byte
	wall                 time.Duration
}

// crashHead matches the headline of a crash report; crashLine also
// matches the runtime's diagnostics that may come before it.
var (
	crashHead = regexp.MustCompile(`^(SIG[A-Z]+: |fatal error: |panic: |unexpected fault address)`)
	crashLine = regexp.MustCompile(`^(SIG[A-Z]+: |fatal error: |panic: |unexpected fault address|runtime: )`)
)

// hexDump matches the stack dump lines the runtime prints after
// "unexpected return pc", left out of the logged crash report.
var hexDump = regexp.MustCompile(`^\s*[0-9a-f]{8,16}: `)

func (o outcome) String() string {
	counts := fmt.Sprintf("%d flips (%d patch+unpatch cycles; first flip %v, slowest later flip %v), %d calls, %d wrong, %d GCs",
		o.flips, o.flips/2, o.firstFlip.Round(time.Microsecond), o.maxFlip.Round(time.Microsecond), o.calls, o.wrong, o.gcs)
	if o.wrong > 0 {
		counts += fmt.Sprintf(" (first wrong result %d)", int(o.firstBad-1))
	}
	switch {
	case !o.started:
		return fmt.Sprintf("%s: storm never started (%s)", o.kind, o.exit)
	case o.hung:
		return fmt.Sprintf("%s: HUNG, killed after %v; last flip at %v: %s", o.kind, o.wall.Round(time.Second), o.elapsed.Round(time.Microsecond), counts)
	case o.clean:
		return fmt.Sprintf("%s: survived %v: %s", o.kind, o.elapsed.Round(time.Millisecond), counts)
	case o.crash != "":
		return fmt.Sprintf("%s: crashed with %q (%s) after %v: %s", o.kind, o.crash, o.exit, o.elapsed.Round(time.Microsecond), counts)
	default:
		return fmt.Sprintf("%s: failed (%s) after %v: %s", o.kind, o.exit, o.elapsed.Round(time.Microsecond), counts)
	}
}

func runChild(t *testing.T, kind string, d time.Duration, run int) outcome {
	o := outcome{kind: kind}
	path := filepath.Join(t.TempDir(), "counters")
	if err := os.WriteFile(path, make([]byte, counterBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFlipChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+kind, envCounters+"="+path,
		envSeconds+"="+strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	o.wall = time.Since(t0)
	o.output = out
	o.hung = ctx.Err() != nil

	raw, rerr := os.ReadFile(path)
	if rerr != nil || len(raw) < slotEnd*8 {
		t.Fatalf("%s: reading the child's counters: %v (%d bytes)", kind, rerr, len(raw))
	}
	at := func(slot int) uint64 { return binary.LittleEndian.Uint64(raw[slot*8:]) }
	o.started = at(slotState) >= 1
	o.elapsed = time.Duration(at(slotElapsed))
	o.flips, o.gcs, o.firstBad = at(slotFlips), at(slotGCs), at(slotBad)
	o.firstFlip, o.maxFlip = time.Duration(at(slotFirstFlip)), time.Duration(at(slotMaxFlip))
	for i := range callers {
		o.calls += at(slotCalls + 8*i)
		o.wrong += at(slotWrong + 8*i)
	}

	var ee *exec.ExitError
	switch {
	case err == nil:
		o.exit = "exit status 0"
		o.clean = at(slotState) == 2 && !o.hung
	case errors.As(err, &ee):
		o.exit = ee.String()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			o.exit = fmt.Sprintf("killed by %s (%v)", unix(ws.Signal()), ws.Signal())
		}
	default:
		o.exit = err.Error()
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	inReport := false
	for sc.Scan() {
		line := sc.Text()
		if o.crash == "" && crashHead.MatchString(line) {
			o.crash = line
		}
		inReport = inReport || crashLine.MatchString(line)
		if inReport && len(o.report) < 12 && !hexDump.MatchString(line) {
			o.report = append(o.report, line)
		}
	}
	if dir := os.Getenv(envLogDir); dir != "" {
		name := filepath.Join(dir, fmt.Sprintf("flip-%s-%d.log", kind, run))
		if err := os.WriteFile(name, out, 0o644); err != nil {
			t.Errorf("keeping the child's output: %v", err)
		}
	}
	return o
}

// unix names a signal the way kill -l does.
func unix(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGTRAP: "SIGTRAP", syscall.SIGSEGV: "SIGSEGV", syscall.SIGILL: "SIGILL",
		syscall.SIGBUS: "SIGBUS", syscall.SIGABRT: "SIGABRT", syscall.SIGKILL: "SIGKILL",
		syscall.SIGFPE: "SIGFPE",
	}
	if n, ok := names[sig]; ok {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

// TestFlipStorm runs the storm against gomonkey and against Switchboard,
// FLIP_RUNS times each, and logs what happened. It fails only if the
// Switchboard storm gives a wrong result, crashes, hangs or errs, or if a
// child never got as far as starting its storm.
func TestFlipStorm(t *testing.T) {
	if os.Getenv(envChild) != "" {
		t.Skip("this is a child process")
	}
	if testing.Short() {
		t.Skip("takes FLIP_SECONDS (default 5) per storm")
	}
	d, err := stormSeconds()
	if err != nil {
		t.Fatal(err)
	}
	runs := 1
	if s := os.Getenv(envRuns); s != "" {
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("%s=%q: want a positive count", envRuns, s)
		}
	}
	var summary []string
	for run := 1; run <= runs; run++ {
		for _, kind := range []string{"gomonkey", "switchboard"} {
			o := runChild(t, kind, d, run)
			line := fmt.Sprintf("run %d/%d %v", run, runs, o)
			summary = append(summary, line)
			t.Log(line)
			if len(o.report) > 0 {
				t.Logf("%s crash report (first %d lines):\n\t%s", kind, len(o.report), strings.Join(o.report, "\n\t"))
			}
			bad := !o.started || (kind == "switchboard" && (!o.clean || o.wrong > 0 || o.flips == 0 || o.calls == 0))
			if bad {
				t.Errorf("%s storm failed: %v\n--- child output ---\n%s", kind, o, tail(o.output, 60))
			}
		}
	}
	t.Logf("summary:\n\t%s", strings.Join(summary, "\n\t"))
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
