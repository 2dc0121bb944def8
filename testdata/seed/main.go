// Command seed replays the case Switchboard grew from: a C function `one`
// (push rbp; mov rbp,rsp; mov eax,0x2a; pop rbp; ret) is called in a loop
// by four pthreads and by C on a goroutine's g0 stack, while the garbage
// collector and the CPU profiler run, and is redirected over and over to
// replacements in a shared object loaded with dlopen more than 2 GiB away,
// and back. Every result is checked; the program exits 1 on any wrong one. It then patches a C++
// method found by its demangled name, and shows the refusal of a function
// a stripped object keeps no symbol for.
//
//	go run ./cmd/switchboard seed [-duration 3s] [-workers 4]
//
// which builds it with go build and runs it (go run ./testdata/seed would
// strip its symbol table, which SetC needs to find its C functions). It
// needs cgo and gcc (g++ for the C++ part), which also builds the
// replacement library at start.
package main

/*
#cgo CFLAGS: -O0 -fno-omit-frame-pointer
#cgo CXXFLAGS: -O2
#cgo LDFLAGS: -ldl -lpthread
#include <dlfcn.h>
#include <stdlib.h>
#include "seed.h"
*/
import "C"

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/switchboard-go/switchboard/registry"
)

//go:embed solib/repl.c
var replSource string

func main() {
	duration := flag.Duration("duration", 3*time.Second, "how long to flip the patch")
	workers := flag.Int("workers", 4, "pthreads calling one()")
	flag.Parse()
	if err := run(*duration, *workers); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("OK")
}

// library builds solib/repl.c into a shared object, stripped or not.
func library(dir, name string, stripped bool) (string, error) {
	src := filepath.Join(dir, "repl.c")
	if err := os.WriteFile(src, []byte(replSource), 0o644); err != nil {
		return "", err
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	out := filepath.Join(dir, name)
	args := []string{"-shared", "-fPIC", "-O0", "-fcf-protection=none", "-o", out, src}
	if stripped {
		args = append(args, "-s")
	}
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %v: %v\n%s", cc, args, err, b)
	}
	return out, nil
}

type lib struct {
	path string
	h    unsafe.Pointer
}

func open(path string) (*lib, error) {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	h := C.dlopen(p, C.RTLD_NOW|C.RTLD_LOCAL)
	if h == nil {
		return nil, fmt.Errorf("dlopen %s: %s", path, C.GoString(C.dlerror()))
	}
	return &lib{path, h}, nil
}

func (l *lib) sym(name string) unsafe.Pointer {
	p := C.CString(name)
	defer C.free(unsafe.Pointer(p))
	s := C.dlsym(l.h, p)
	if s == nil {
		panic(fmt.Sprintf("dlsym %s in %s: %s", name, l.path, C.GoString(C.dlerror())))
	}
	return s
}

func run(duration time.Duration, workers int) error {
	dir, err := os.MkdirTemp("", "switchboard-seed")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	full, err := library(dir, "repl.so", false)
	if err != nil {
		return err
	}
	stripped, err := library(dir, "repl-stripped.so", true)
	if err != nil {
		return err
	}
	repl, err := open(full)
	if err != nil {
		return err
	}

	if _, err := registry.LookupSymbol("one"); err != nil {
		return fmt.Errorf("%v\nThis binary has no symbol table (go run strips it). Run the seed with\n"+
			"go run ./cmd/switchboard seed, or go build ./testdata/seed and run the result", err)
	}
	one := C.one_addr()
	code := unsafe.Slice((*byte)(one), 11)
	fmt.Printf("one: %p (16k+%d), bytes % x\n", one, uintptr(one)%16, code)
	if want := "\x55\x48\x89\xe5\xb8\x2a\x00\x00\x00\x5d\xc3"; string(code) != want {
		return fmt.Errorf("one's bytes are not the seed's: % x", code)
	}
	seven, thirteen, wrapped := repl.sym("seven"), repl.sym("thirteen"), repl.sym("wrapped")
	d := int64(uintptr(seven)) - int64(uintptr(one))
	fmt.Printf("repl.so: seven at %p, %#x bytes (%.1f GiB) from one\n", seven, d, float64(d)/(1<<30))
	if d > -(1<<31) && d < 1<<31 {
		return fmt.Errorf("the replacement is within rel32 reach of one: the seed's case needs it far")
	}

	orig, err := registry.OriginalC(one)
	if err != nil {
		return err
	}
	C.call_setter(repl.sym("set_orig"), orig)
	if got := C.call_int_fn(orig); got != 42 {
		return fmt.Errorf("the original through its trampoline returned %d", got)
	}

	// C++: a method by its demangled name.
	const method = "shop::Price::get(int) const"
	get, err := registry.LookupSymbol(method)
	if err != nil {
		return err
	}
	before := C.price_get(10, 3)
	if err := registry.SetC(get, repl.sym("discount")); err != nil {
		return err
	}
	patched := C.price_get(10, 3)
	if err := registry.ResetC(get); err != nil {
		return err
	}
	after := C.price_get(10, 3)
	fmt.Printf("c++: %s at %p: price_get(10, 3) = %d, patched %d, reset %d\n", method, get, before, patched, after)
	if before != 3010 || patched != 3009 || after != 3010 {
		return fmt.Errorf("the C++ patch did not take effect as expected")
	}

	// A function inside the shared object, called from inside it.
	answer, callAnswer := repl.sym("lib_answer"), repl.sym("call_lib_answer")
	origAnswer, err := registry.OriginalC(answer)
	if err != nil {
		return err
	}
	if err := registry.SetC(answer, thirteen); err != nil {
		return err
	}
	patchedAnswer, origAnswerNow := C.call_int_fn(callAnswer), C.call_int_fn(origAnswer)
	if err := registry.ResetC(answer); err != nil {
		return err
	}
	resetAnswer := C.call_int_fn(callAnswer)
	site := "?"
	for _, r := range registry.List() {
		if r.Entry == uintptr(answer) {
			form := "rel32"
			if b := unsafe.Slice((*byte)(unsafe.Add(answer, int(r.Site-r.Entry))), 3); b[1] == 0xFF && b[2] == 0x15 {
				form = "through its slot: cdispatcher is out of rel32 reach"
			}
			site = fmt.Sprintf("%s, site %#x calls cdispatcher %s", r.Tactic, r.Site, form)
		}
	}
	fmt.Printf("repl.so: lib_answer at %p (%s): 5, patched %d (original through its trampoline %d), reset %d\n",
		answer, site, patchedAnswer, origAnswerNow, resetAnswer)
	if patchedAnswer != 13 || origAnswerNow != 5 || resetAnswer != 5 {
		return fmt.Errorf("the patch inside the shared object did not take effect as expected")
	}

	// The storm: pthreads and a goroutine (C on the g0 stack) call one
	// while the patch is set, retargeted, wrapped and reset in a loop;
	// the pthreads also call lib_answer (from inside the .so, whose site
	// reaches cdispatcher through its slot) and the C++ method, which are
	// patched and reset in the same loop.
	discount := repl.sym("discount")
	if n := C.start_workers(C.int(workers), callAnswer); int(n) != workers {
		return fmt.Errorf("started %d of %d pthreads", n, workers)
	}
	// The CPU profiler's SIGPROF lands on every thread, pthreads included,
	// wherever it is: in one, in a relay site, in cdispatcher.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		return err
	}
	var stop atomic.Bool
	var goCalls, goWrong atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			switch C.call_one() {
			case 42, 7, 13, 43:
			default:
				goWrong.Add(1)
			}
			goCalls.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	flips := 0
	var flipErr error
	for start := time.Now(); time.Since(start) < duration && flipErr == nil; flips++ {
		flipErr = errors.Join(registry.SetC(one, seven), registry.SetC(answer, thirteen), registry.SetC(get, discount))
		if flips == 0 {
			for _, r := range registry.List() {
				fmt.Println("patch:", r)
			}
		}
		// Retargets are one pointer store: hold each target a moment so
		// that the callers see all of them.
		time.Sleep(100 * time.Microsecond)
		flipErr = errors.Join(flipErr, registry.SetC(one, thirteen))
		time.Sleep(100 * time.Microsecond)
		flipErr = errors.Join(flipErr, registry.SetC(one, wrapped))
		time.Sleep(100 * time.Microsecond)
		flipErr = errors.Join(flipErr, registry.ResetC(one), registry.ResetC(answer), registry.ResetC(get))
		time.Sleep(100 * time.Microsecond)
	}
	c := C.stop_workers()
	stop.Store(true)
	wg.Wait()
	pprof.StopCPUProfile()
	calls := c.orig + c.seven + c.thirteen + c.wrapped
	fmt.Printf("storm: %d pthreads and a goroutine for %v: %d flips, %d calls of one (original %d, seven %d, thirteen %d, wrapped %d), "+
		"lib_answer %d/%d and Price::get %d/%d (original/patched), %d goroutine calls, wrong %d\n",
		workers, duration, flips, calls, c.orig, c.seven, c.thirteen, c.wrapped,
		c.answer_orig, c.answer_patched, c.price_orig, c.price_patched, goCalls.Load(), int64(c.wrong)+goWrong.Load())
	switch {
	case flipErr != nil:
		return flipErr
	case c.wrong != 0 || goWrong.Load() != 0:
		return fmt.Errorf("%d wrong results (last %d)", int64(c.wrong)+goWrong.Load(), c.last_wrong)
	case c.orig == 0 || c.seven == 0 || c.thirteen == 0 || c.wrapped == 0 ||
		c.answer_orig == 0 || c.answer_patched == 0 || c.price_orig == 0 || c.price_patched == 0:
		return fmt.Errorf("the storm did not see the original and every replacement of every function")
	}
	if got := C.call_one(); got != 42 {
		return fmt.Errorf("after ResetC one() = %d", got)
	}

	bare, err := open(stripped)
	if err != nil {
		return err
	}
	if err := refusals(one, repl, bare); err != nil {
		return err
	}
	return cost(one, seven)
}

// cost prints what a patched C call costs, as a ratio to calling the
// replacement directly in the same rounds: the median of 7 interleaved
// rounds. A measurement, never a check: the machine may be loaded.
func cost(one, seven unsafe.Pointer) error {
	if err := registry.SetC(one, seven); err != nil {
		return err
	}
	defer registry.ResetC(one)
	const n = 2_000_000
	var direct, patched []float64
	for range 7 {
		direct = append(direct, float64(C.ns_per_call(seven, n)))
		patched = append(patched, float64(C.ns_per_call(one, n)))
	}
	slices.Sort(direct)
	slices.Sort(patched)
	fmt.Printf("cost: seven called directly %.2f ns/call, one patched to seven %.2f ns/call (%.2fx), medians of 7 rounds\n",
		direct[3], patched[3], patched[3]/direct[3])
	return nil
}

// refusals checks that every bad SetC is refused with its sentinel and
// changes neither one's code, nor List, nor what one returns.
func refusals(one unsafe.Pointer, repl, bare *lib) error {
	if err := registry.SetC(one, repl.sym("seven")); err != nil {
		return err
	}
	defer registry.ResetC(one)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"impl nil", registry.SetC(one, nil), registry.ErrNil},
		{"impl is Go code", registry.SetC(one, reflect.ValueOf(run).UnsafePointer()), registry.ErrNotFunc},
		{"fn inside one", registry.SetC(unsafe.Add(one, 4), repl.sym("thirteen")), registry.ErrNotEntry},
		{"cycle seven -> one -> seven", registry.SetC(repl.sym("seven"), one), registry.ErrCycle},
		{"one at 16k+2", registry.SetC(C.one_at2_addr(), repl.sym("seven")), registry.ErrUnpatchable},
		{"inlined into use_inlined", registry.SetC(C.inlined_one_addr(), repl.sym("seven")), registry.ErrInlined},
		{"C++ method inlined into price_total", registry.SetC(mustLookup("shop::Price::total(int) const"), repl.sym("seven")), registry.ErrInlined},
		{"cgo glue", registry.SetC(mustLookup("x_cgo_init"), repl.sym("seven")), registry.ErrProtected},
		{"static function of a stripped .so", registry.SetC(C.call_ptr_fn(bare.sym("hidden_addr")), repl.sym("seven")), registry.ErrNoSymbols},
		{"no such symbol", lookupErr("shop::Price::nope(int) const"), registry.ErrSymbolNotFound},
	}
	code := string(unsafe.Slice((*byte)(one), 11))
	list := fmt.Sprint(registry.List())
	for _, c := range cases {
		fmt.Printf("refused, %s: %v\n", c.name, c.err)
		var re *registry.Error
		if !errors.Is(c.err, c.want) || !errors.As(c.err, &re) {
			return fmt.Errorf("%s: got %v, want a *registry.Error wrapping %v", c.name, c.err, c.want)
		}
	}
	if string(unsafe.Slice((*byte)(one), 11)) != code || fmt.Sprint(registry.List()) != list || C.call_one() != 7 {
		return fmt.Errorf("a refused call changed one's code, List or behaviour")
	}
	return nil
}

func mustLookup(name string) unsafe.Pointer {
	p, err := registry.LookupSymbol(name)
	if err != nil {
		panic(err)
	}
	return p
}

func lookupErr(name string) error {
	_, err := registry.LookupSymbol(name)
	return err
}
