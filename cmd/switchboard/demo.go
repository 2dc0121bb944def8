package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// switchboard demo: workers call an embedded service at full speed while
// the patcher redirects, retargets and resets its functions as fast as it
// can, with the CPU profiler on and a GC every millisecond (the hazards of
// docs/design.md section 8). Every call's result is checked.

type demoConfig struct {
	duration time.Duration
	workers  int
	json     bool
	out      io.Writer
	targets  func(*service) []*patchTarget // the tests swap in a broken model
}

func runDemo(args []string) error {
	cfg := demoConfig{out: os.Stdout, targets: serviceTargets}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long to run")
	fs.IntVar(&cfg.workers, "workers", 4, "goroutines calling the service")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object per second, then a summary object")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: switchboard demo [-duration 20s] [-workers 4] [-json]\n\n"+
			"Hot-patch an embedded service's functions while goroutines call it,\n"+
			"checking every result. Exits non-zero on any wrong result or failed Set/Reset.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.duration <= 0 || cfg.workers < 1 {
		return errors.New("-duration and -workers must be positive")
	}
	_, err := demo(cfg)
	return err
}

type demoRun struct {
	cfg     demoConfig
	svc     *service
	targets []*patchTarget
	log     *allowedLog
	stats   patchStats
	wrong   wrongLog
	calls   atomic.Uint64
	gcs     atomic.Uint64

	// Owned by whoever patches: the start-up, then the patcher, then the shutdown.
	state  []int  // the implementation each target runs
	failed []bool // a Set or Reset of it failed: leave it alone
}

// demo runs the demo and returns its summary; the error reports wrong
// results and failed Sets and Resets.
func demo(cfg demoConfig) (*demoSummary, error) {
	svc := newService()
	d := &demoRun{cfg: cfg, svc: svc, targets: cfg.targets(svc)}
	d.log = newAllowedLog(d.targets)
	d.state = make([]int, len(d.targets))
	d.failed = make([]bool, len(d.targets))
	d.stats.perTarget = make([][nPatchOps]uint64, len(d.targets))

	// The patcher and the reporter need Ps of their own beside the workers,
	// or they would wait for the workers' preemption at every step.
	procs := max(runtime.NumCPU(), cfg.workers+2)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	profiling := pprof.StartCPUProfile(io.Discard) == nil // fails if already on

	var stopLoad, stopPatch atomic.Bool
	var load, patcher sync.WaitGroup
	for w := range cfg.workers {
		load.Go(func() { d.work(w*1009, &stopLoad) })
	}
	load.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if stopLoad.Load() {
				return
			}
			runtime.GC()
			d.gcs.Add(1)
		}
	})

	// Patch every function once before printing, so List knows its tactic.
	// A function's first Set also plans its patch and maps its relay page;
	// the process's first reads the binary's inlining. The clock starts
	// after them, so a loaded machine cannot eat a short run.
	first := make([]time.Duration, len(d.targets))
	for t := range d.targets {
		first[t] = d.apply(t, 1)
	}
	start := time.Now()
	d.printHeader(procs, profiling, first)
	patcher.Go(func() { d.patch(&stopPatch) })

	var prevCalls, prevWrong, prevFailures uint64
	prevEnd := time.Duration(0)
	for k := 1; ; k++ {
		end := min(time.Duration(k)*time.Second, cfg.duration)
		time.Sleep(time.Until(start.Add(end)))
		last := end == cfg.duration
		if last {
			stopPatch.Store(true)
			patcher.Wait()
			for t, cur := range d.state {
				if cur != 0 && !d.failed[t] {
					d.apply(t, 0)
				}
			}
			stopLoad.Store(true)
			load.Wait()
			if profiling {
				pprof.StopCPUProfile()
			}
			end = time.Since(start)
		}
		calls, wrong := d.calls.Load(), d.wrong.n.Load()
		lat, failures := d.stats.take()
		d.printSecond(end, end-prevEnd, calls-prevCalls, wrong-prevWrong, failures-prevFailures, lat)
		prevCalls, prevWrong, prevFailures, prevEnd = calls, wrong, failures, end
		if last {
			break
		}
	}
	s := d.summary(time.Since(start), procs, profiling)
	d.printSummary(s)

	var errs []error
	if s.Wrong > 0 {
		errs = append(errs, fmt.Errorf("%d wrong results, first: %s", s.Wrong, s.WrongResults[0]))
	}
	if s.Failures > 0 {
		errs = append(errs, fmt.Errorf("%d Set/Reset calls failed, first: %s", s.Failures, s.Errors[0]))
	}
	return s, errors.Join(errs...)
}

// work is one worker: it serves requests and checks every result against
// the implementations that may have been installed during the request.
func (d *demoRun) work(seed int, stop *atomic.Bool) {
	var out [nTargets]int
	var pending uint64
	for i := seed; !stop.Load(); i++ {
		x := i&4095 + 1
		g1 := d.log.gen.Load()
		d.svc.handle(x, &out)
		g2 := d.log.gen.Load()
		for t, r := range out {
			if mask := d.log.allowed(g1, g2, t); !d.targets[t].matches(x, r, mask) {
				d.wrongResult(t, x, r, mask)
			}
		}
		if pending++; pending == 256 {
			d.calls.Add(pending * nTargets)
			pending = 0
		}
	}
	d.calls.Add(pending * nTargets)
}

func (d *demoRun) wrongResult(t, x, r int, mask uint32) {
	if d.wrong.n.Add(1) > 5 {
		return
	}
	tg := d.targets[t]
	var allowed []string
	produced := "no implementation"
	for i, name := range tg.impls {
		if mask&(1<<i) != 0 {
			allowed = append(allowed, name)
		}
		if tg.models[i](x) == r {
			produced = name
		}
	}
	d.wrong.mu.Lock()
	d.wrong.samples = append(d.wrong.samples, fmt.Sprintf("%s(%d) = %#x, which %s returns; allowed: %s",
		tg.name, x, r, produced, strings.Join(allowed, ", ")))
	d.wrong.mu.Unlock()
}

// apply installs implementation i of target t (Reset when i is 0), timing
// it and publishing which implementations may run meanwhile.
func (d *demoRun) apply(t, i int) time.Duration {
	cur := d.state[t]
	kind := opRetarget
	switch {
	case i == 0:
		kind = opReset
	case cur == 0:
		kind = opPatch
	}
	d.log.publish(t, 1<<cur|1<<i)
	start := time.Now()
	err := d.targets[t].apply(i)
	lat := time.Since(start)
	if err != nil {
		// A refused Set or Reset changes nothing, says the registry: keep
		// checking calls against the current implementation.
		d.log.publish(t, 1<<cur)
		d.failed[t] = true
		d.stats.fail(err)
		return lat
	}
	d.state[t] = i
	d.log.publish(t, 1<<i)
	d.stats.add(t, kind, lat)
	return lat
}

// patch redirects, retargets and resets random targets until stopped.
// Redirected targets are reset one time in three, so there are about two
// retargets per patch.
func (d *demoRun) patch(stop *atomic.Bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	for !stop.Load() {
		t := rng.IntN(len(d.targets))
		if d.failed[t] {
			if !slices.Contains(d.failed, false) {
				return
			}
			continue
		}
		cur, n := d.state[t], len(d.targets[t].impls)
		switch {
		case cur == 0:
			d.apply(t, 1+rng.IntN(n-1))
		case n < 3 || rng.IntN(3) == 0:
			d.apply(t, 0)
		default:
			next := 1 + rng.IntN(n-2) // any other replacement
			if next >= cur {
				next++
			}
			d.apply(t, next)
		}
	}
}

// redirects returns registry.List's entry for each target, by entry address.
func (d *demoRun) redirects() []registry.Redirect {
	out := make([]registry.Redirect, len(d.targets))
	for _, r := range registry.List() {
		for t, tg := range d.targets {
			if r.Entry == tg.entry {
				out[t] = r
			}
		}
	}
	return out
}
