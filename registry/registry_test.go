package registry_test

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/unwind"
)

// shapeCaveat says why a victim may not have the prologue shape a test
// expects, or "": the race detector instruments every prologue, and a PIE
// binary loads high, so relay windows below a function open up (residue
// functions become patchable, and tactics change).
func shapeCaveat() string {
	if raceBuild {
		return "-race instruments every prologue"
	}
	if im, err := unwind.Self(); err == nil && im.Bias != 0 {
		return "a PIE binary opens relay windows below each function"
	}
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func redirectOf(t *testing.T, name string) registry.Redirect {
	t.Helper()
	for _, r := range registry.List() {
		if strings.HasSuffix(r.Func, "."+name) {
			return r
		}
	}
	t.Fatalf("%s not in List", name)
	return registry.Redirect{}
}

func TestShapesRedirectRetargetReset(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			const x = 21
			want := s.want(x)
			check := func(stage string, w int) {
				t.Helper()
				if got := s.call(x); got != w {
					t.Fatalf("%s: got %d, want %d", stage, got, w)
				}
			}
			check("before", want[0])
			must(t, s.set(1))
			check("Set", want[1])
			must(t, s.set(2))
			check("retarget", want[2])
			must(t, s.reset())
			check("Reset", want[0])
			must(t, s.set(2))
			check("Set after Reset", want[2])
			must(t, s.reset())
			check("second Reset", want[0])
			must(t, s.reset()) // Reset of a restored function does nothing
			check("third Reset", want[0])
		})
	}
	// Every shape got the tactic it exists to exercise.
	got := map[string]string{}
	for _, r := range registry.List() {
		got[r.Func[strings.LastIndexByte(r.Func, '.')+1:]] = r.Tactic
	}
	want := map[string]string{
		"leafRet": "entry-jump", "leafZero": "punned-jump", "leafInc": "punned-jump", "leafField": "prefixed-jump",
		"standard": "punned-jump", "mediumFrame": "entry-jump", "hugeFrame": "prefixed-jump", "hugeFrameHigh": "past-scratch",
		"nopFirst": "past-nop", "pushFirst": "past-push-rbp", "Add": "punned-jump",
		"M": "evict-jump", "less": "evict-jump", "ok": "evict-jump", "high": "evict-jump",
	}
	for k, v := range want {
		switch {
		case got[k] == v:
		case shapeCaveat() != "":
			t.Logf("%s: tactic %q, %q in a plain build (%s)", k, got[k], v, shapeCaveat())
		default:
			t.Errorf("%s: tactic %q, want %q (the compiler may have changed its prologue)", k, got[k], v)
		}
	}
}

func TestSiteReusedAfterReset(t *testing.T) {
	must(t, registry.Set(leafInc, leafZero))
	first := redirectOf(t, "leafInc")
	must(t, registry.Reset(leafInc))
	if r := redirectOf(t, "leafInc"); r.Active || r.Site != first.Site {
		t.Fatalf("after Reset: %v; want inactive at site %#x", r, first.Site)
	}
	must(t, registry.Set(leafInc, leafRet))
	if r := redirectOf(t, "leafInc"); !r.Active || r.Site != first.Site || !strings.HasSuffix(r.Target, ".leafRet") {
		t.Fatalf("after second Set: %v", r)
	}
	must(t, registry.Reset(leafInc))
	if s := first.String(); !strings.Contains(s, "leafInc") || !strings.Contains(s, "leafZero") || !strings.Contains(s, "site mode") {
		t.Errorf("Redirect.String() = %q", s)
	}
}

func TestCallsThroughInterfaceFuncValueAndMethodValue(t *testing.T) {
	a := &acc{base: 1}
	var iface adder = a
	fv := (*acc).Add
	mv := a.Add
	must(t, registry.Set((*acc).Add, func(a *acc, x int) int { return -a.base - x }))
	defer registry.Reset((*acc).Add)
	got := []int{a.Add(2), iface.Add(2), fv(a, 2), mv(2)}
	if diff := cmp.Diff([]int{-3, -3, -3, -3}, got); diff != "" {
		t.Fatalf("direct, interface, func value, method value (-want +got):\n%s", diff)
	}
}

// manyArgs calls a function, so it opens with the stack check: as a leaf
// its first bytes would pin a relay window that depends on the binary's
// size (the tiny-leaf residue), and this test is about arguments.
//
//go:noinline
func manyArgs(a, b, c, d, e, f, g, h, i, j, k int, x, y float64, s string) float64 {
	return float64(a+b+c+d+e+f+g+h+i+j+k) + x*y + float64(strLen(s))
}

//go:noinline
func strLen(s string) int { return len(s) }

func TestStackArgumentsAndFloats(t *testing.T) {
	// Eleven integers: two more than there are integer argument registers.
	call := func() float64 { return manyArgs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1.5, 4, "abc") }
	if got := call(); got != 66+6+3 {
		t.Fatalf("original: %v", got)
	}
	must(t, registry.Set(manyArgs, func(a, b, c, d, e, f, g, h, i, j, k int, x, y float64, s string) float64 {
		return float64(a*1+b*2+c*3+d*4+e*5+f*6+g*7+h*8+i*9+j*10+k*11) + x - y + float64(len(s)*100)
	}))
	defer registry.Reset(manyArgs)
	if got, want := call(), float64(506)+1.5-4+300; got != want {
		t.Fatalf("redirected: %v, want %v", got, want)
	}
}

type scaler struct{ k int }

func (s scaler) scale(x int) int { return x * s.k }

func TestClosureAndMethodValueImpls(t *testing.T) {
	offset := 40
	must(t, registry.Set(leafRet, func(x int) int { return x + offset }))
	defer registry.Reset(leafRet)
	if got := leafRet(2); got != 42 {
		t.Fatalf("closure impl: %d", got)
	}
	offset = 50 // the closure captured the variable, not its value
	if got := leafRet(2); got != 52 {
		t.Fatalf("closure impl after change: %d", got)
	}
	must(t, registry.Set(leafRet, scaler{k: 7}.scale))
	if got := leafRet(3); got != 21 {
		t.Fatalf("method value impl: %d", got)
	}
}

func TestPanicInImplIsRecovered(t *testing.T) {
	must(t, registry.Set(leafInc, func(x int) int { panic(fmt.Sprintf("boom %d", x)) }))
	defer registry.Reset(leafInc)
	got := func() (msg any) {
		defer func() { msg = recover() }()
		leafInc(5)
		return nil
	}()
	if got != "boom 5" {
		t.Fatalf("recovered %v", got)
	}
	must(t, registry.Set(leafInc, leafRet))
	if leafInc(5) != 5 {
		t.Fatal("victim unusable after a panic")
	}
}

//go:noinline
func callerOfLeafInc(x int) int { return leafInc(x) }

func TestCallersInsideImpl(t *testing.T) {
	var frames []string
	must(t, registry.Set(leafInc, func(x int) int {
		pcs := make([]uintptr, 8)
		n := runtime.Callers(1, pcs)
		fs := runtime.CallersFrames(pcs[:n])
		for {
			f, more := fs.Next()
			frames = append(frames, f.Function)
			if !more {
				break
			}
		}
		return x
	}))
	defer registry.Reset(leafInc)
	callerOfLeafInc(1)
	if len(frames) < 3 {
		t.Fatalf("frames %q", frames)
	}
	want := []string{"TestCallersInsideImpl.func1", "callerOfLeafInc", "TestCallersInsideImpl"}
	for i, w := range want {
		if !strings.HasSuffix(frames[i], "."+w) {
			t.Fatalf("frame %d is %q, want *.%s; all: %q", i, frames[i], w, frames)
		}
	}
	for _, f := range frames {
		if f == "" || strings.Contains(f, "?") {
			t.Fatalf("unknown frame in %q", frames)
		}
	}
}

func TestDeepRecursionInImplGrowsStack(t *testing.T) {
	var depth func(n int) int
	depth = func(n int) int {
		var pad [64]byte
		pad[n%64] = byte(n)
		if n == 0 {
			return int(pad[0])
		}
		return depth(n-1) + 1
	}
	must(t, registry.Set(standard, func(x int) int { return depth(x) }))
	defer registry.Reset(standard)
	done := make(chan int)
	go func() { done <- standard(200_000) }() // a fresh goroutine starts on a small stack
	if got := <-done; got != 200_000 {
		t.Fatalf("got %d", got)
	}
}

func TestCallMode(t *testing.T) {
	must(t, registry.SetWith(standard, leafRet, registry.WithMode(registry.CallMode)))
	defer registry.Reset(standard)
	if got := standard(4); got != 4 {
		t.Fatalf("call mode: %d", got)
	}
	r := redirectOf(t, "standard")
	if r.Mode != "call" || !r.Active {
		t.Fatalf("List: %v", r)
	}
	must(t, registry.SetWith(standard, leafInc, registry.WithMode(registry.CallMode)))
	if got := standard(4); got != 5 {
		t.Fatalf("call mode retarget: %d", got)
	}
	err := registry.Set(standard, leafZero)
	if !errors.Is(err, registry.ErrModeConflict) {
		t.Fatalf("site-mode Set while in call mode: %v", err)
	}
	must(t, registry.Reset(standard))
	must(t, registry.Set(standard, leafZero))
	if got := standard(4); got != 0 {
		t.Fatalf("site mode after call mode: %d", got)
	}
}

func TestSetFnFnIsReset(t *testing.T) {
	must(t, registry.Set(leafZero, leafInc))
	must(t, registry.Set(leafZero, leafZero))
	if leafZero(3) != 0 || redirectOf(t, "leafZero").Active {
		t.Fatal("Set(fn, fn) did not reset")
	}
}

func TestCycleRefused(t *testing.T) {
	must(t, registry.Set(leafRet, leafZero))
	defer registry.Reset(leafRet)
	must(t, registry.Set(leafZero, leafInc))
	defer registry.Reset(leafZero)
	before := snapshot(leafInc)
	err := registry.Set(leafInc, leafRet) // leafInc -> leafRet -> leafZero -> leafInc
	if !errors.Is(err, registry.ErrCycle) || !strings.Contains(err.Error(), "leafInc -> ") {
		t.Fatalf("got %v, want ErrCycle naming the path", err)
	}
	if snapshot(leafInc) != before || leafInc(1) != 2 {
		t.Fatal("a refused Set changed the code")
	}
}

// snapshot reads a function's first eight bytes.
func snapshot[F any](fn F) [8]byte {
	e := any(fn)
	fv := (*[2]unsafe.Pointer)(unsafe.Pointer(&e))[1]
	return *(*[8]byte)(*(*unsafe.Pointer)(fv))
}

//go:noinline
func generic[T any](x T) T { return x }

func smallInlined(x int) int { return x*7 + 1 }

//go:noinline
func usesSmallInlined(xs []int) (n int) {
	for _, x := range xs {
		n += smallInlined(x)
	}
	return n
}

// residue stays in the tiny-leaf residue with runtime.nilfunc's shape:
// xor eax,eax; mov byte [rax],0; ret. The entry jump's windows lie inside
// the image (0000c6xx, 50 KiB up) or below address 0 (c3 on top) in a
// non-PIE binary, a prefix cannot stand on the store's boundary at +2,
// and the store cannot be evicted: the xor sets flags, which the nil check
// its stub would need (test rax,rax) could clobber.
//
//go:noinline
func residue() { *(*uint8)(nil) = 0 }

// spin loops back to its own entry: a goroutine in the loop would re-enter
// through the patch mid-call.
//
//go:noinline
func spin(p *int) {
	for *p == 0 {
	}
}

// residuePanics reports whether residue still faults as its original does:
// a nil dereference, recovered as a runtime error.
func residuePanics() (ok bool) {
	defer func() {
		r := recover()
		_, ok = r.(runtime.Error)
	}()
	residue()
	return false
}

func TestRefusals(t *testing.T) {
	_ = usesSmallInlined([]int{1})
	x := 3
	closure := func(y int) int { return x + y }
	a := &acc{}
	type c struct {
		name string
		err  func() error
		want error
		// fn names the function the message must name ("" if none).
		fn string
		// shape: the case depends on the prologue the compiler emits.
		shape bool
	}
	cases := []c{
		{"nil fn", func() error { return registry.Set[func(int) int](nil, leafInc) }, registry.ErrNil, "", false},
		{"nil impl", func() error { return registry.Set(leafInc, nil) }, registry.ErrNil, "leafInc", false},
		{"nil interface", func() error { return registry.Set[any](nil, nil) }, registry.ErrNil, "", false},
		{"non-function", func() error { return registry.Set[any](42, 43) }, registry.ErrNotFunc, "", false},
		{"impl non-function", func() error { return registry.Set[any](leafInc, 43) }, registry.ErrNotFunc, "leafInc", false},
		{"type mismatch", func() error { return registry.Set[any](leafInc, strings.ToUpper) }, registry.ErrTypeMismatch, "leafInc", false},
		{"method value fn", func() error { return registry.Set(a.Add, leafInc) }, registry.ErrMethodValue, "Add-fm", false},
		{"generic method, two-register receiver", func() error { return registry.Set(pair[int].first, func(pair[int]) int { return 0 }) }, registry.ErrGeneric, "pair[int].first", false},
		{"interface method expression", func() error { return registry.Set(getter.Get, func(getter, int) int { return 0 }) }, registry.ErrWrapper, "getter.Get", false},
		{"pointer wrapper of a value method", func() error { return registry.Set((*valRecv).Get, func(*valRecv, int) int { return 0 }) }, registry.ErrWrapper, "(*valRecv).Get", false},
		{"runtime", func() error { return registry.Set(runtime.GC, runtime.Gosched) }, registry.ErrProtected, "runtime.GC", false},
		{"runtime, other", func() error { return registry.Set(runtime.NumGoroutine, runtime.NumCPU) }, registry.ErrProtected, "runtime.NumGoroutine", false},
		{"runtime subpackage", func() error { return registry.Set(debug.FreeOSMemory, debug.FreeOSMemory) }, registry.ErrProtected, "runtime/debug.FreeOSMemory", false},
		{"generic with its body in the wrapper", func() error { return registry.Set(slices.Sort[[]int], slices.Sort[[]int]) }, registry.ErrInlined, "slices.Sort", false},
		{"reflect", func() error { return registry.Set(reflect.TypeOf, reflect.TypeOf) }, registry.ErrProtected, "reflect.TypeOf", false},
		{"sync/atomic", func() error { return registry.Set(atomic.AddInt64, atomic.AddInt64) }, registry.ErrProtected, "sync/atomic.AddInt64", false},
		{"switchboard itself", func() error { return registry.Set(registry.List, registry.List) }, registry.ErrProtected, "registry.List", false},
		{"switchboard dispatch", func() error { return registry.Set(dispatch.SyncCores, dispatch.SyncCores) }, registry.ErrProtected, "dispatch.SyncCores", false},
		{"switchboard unwind", func() error { return registry.Set(unwind.Name, unwind.Name) }, registry.ErrProtected, "unwind.Name", false},
		{"inlined", func() error { return registry.Set(smallInlined, leafInc) }, registry.ErrInlined, "usesSmallInlined", false},
		{"residue prologue", func() error { return registry.Set(residue, func() {}) }, registry.ErrNoRelay, "residue", true},
		{"back-edge", func() error { return registry.Set(spin, func(*int) {}) }, registry.ErrUnpatchable, "spin", true},
		{"call mode, return in padding", func() error {
			return registry.SetWith(leafRet, leafInc, registry.WithMode(registry.CallMode))
		}, registry.ErrUnpatchable, "leafRet", false},
		{"Original of a closure", func() error { _, err := registry.Original(closure); return err }, registry.ErrClosure, "TestRefusals.func1", false},
		{"Original of an instantiation", func() error { _, err := registry.Original(generic[int]); return err }, registry.ErrGeneric, "generic[", false},
		{"reset nil", func() error { return registry.Reset[func()](nil) }, registry.ErrNil, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if why := shapeCaveat(); tc.shape && why != "" {
				t.Skip("the victim's shape differs in this build: " + why)
			}
			before := registry.List()
			codeBefore := [][8]byte{snapshot(leafInc), snapshot(leafRet), snapshot(residue), snapshot(spin)}
			err := tc.err()
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var re *registry.Error
			if !errors.As(err, &re) {
				t.Fatalf("%T is not *registry.Error", err)
			}
			if !strings.Contains(err.Error(), tc.fn) || !strings.HasPrefix(err.Error(), "switchboard: ") {
				t.Errorf("message %q does not name %q", err, tc.fn)
			}
			if diff := cmp.Diff(before, registry.List()); diff != "" {
				t.Errorf("List changed (-before +after):\n%s", diff)
			}
			codeAfter := [][8]byte{snapshot(leafInc), snapshot(leafRet), snapshot(residue), snapshot(spin)}
			if diff := cmp.Diff(codeBefore, codeAfter); diff != "" {
				t.Errorf("code changed:\n%s", diff)
			}
		})
	}
	if leafInc(1) != 2 || leafRet(1) != 1 || !residuePanics() {
		t.Fatal("victims changed")
	}
}

func TestConcurrentSetResetList(t *testing.T) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var wrong, calls sync.Map
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, bad := 0, 0
			for {
				select {
				case <-stop:
					calls.Store(g, n)
					wrong.Store(g, bad)
					return
				default:
				}
				if v := leafInc(10); v != 11 && v != 10 && v != 0 {
					bad++
				}
				n++
			}
		}()
	}
	var errs sync.Map
	var writers sync.WaitGroup
	for w := range 8 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 300 {
				var err error
				switch (i + w) % 4 {
				case 0:
					err = registry.Set(leafInc, leafRet)
				case 1:
					err = registry.Set(leafInc, leafZero)
				case 2:
					err = registry.Reset(leafInc)
				case 3:
					_ = registry.List()
				}
				if err != nil {
					errs.Store(w, err)
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	must(t, registry.Reset(leafInc))
	errs.Range(func(k, v any) bool { t.Errorf("writer %v: %v", k, v); return true })
	total := 0
	wrong.Range(func(k, v any) bool {
		if v.(int) != 0 {
			t.Errorf("caller %v: %d wrong results", k, v)
		}
		return true
	})
	calls.Range(func(k, v any) bool { total += v.(int); return true })
	if total == 0 {
		t.Fatal("no calls were made")
	}
	t.Logf("%d calls during 2400 concurrent Set/Reset/List", total)
}

type valRecv struct{ k int }

// Get has a value receiver: an interface holding a valRecv calls the
// compiler's (*valRecv).Get wrapper, which calls Get (noinline keeps the
// wrapper from inlining it; an inlined Get is refused with ErrInlined).
//
//go:noinline
func (v valRecv) Get(x int) int { return v.k + x }

type getter interface{ Get(int) int }

func TestValueReceiverThroughInterface(t *testing.T) {
	var g getter = valRecv{k: 1}
	must(t, registry.Set(valRecv.Get, func(v valRecv, x int) int { return v.k * 100 * x }))
	defer registry.Reset(valRecv.Get)
	if got := []int{g.Get(2), valRecv{k: 1}.Get(2)}; got[0] != 200 || got[1] != 200 {
		t.Fatalf("interface, direct = %v, want 200, 200", got)
	}
}
