//go:build linux && amd64

package switchboard

import (
	"encoding/binary"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// handSite writes a relay site by hand into a fresh page:
//
//	call [rip+hdr]; jmp r12; <*Route>
//
// with the dispatcher's address in the page's first word, as dispatch
// writes it. It returns the site's address.
func handSite(t *testing.T, r *Route) uintptr {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(mem[0:], uint64(DispatcherPC()))
	const site = 16
	code := []byte{0xFF, 0x15, 0, 0, 0, 0, 0x41, 0xFF, 0xE4}
	rel := int32(-(site + 6)) // to the page's first word
	binary.LittleEndian.PutUint32(code[2:], uint32(rel))
	code = binary.LittleEndian.AppendUint64(code, uint64(uintptr(unsafe.Pointer(r))))
	copy(mem[site:], code)
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		t.Fatal(err)
	}
	return uintptr(unsafe.Pointer(&mem[site]))
}

// closureVal is the funcval of a closure capturing one int.
type closureVal struct {
	code uintptr
	k    int
}

// via returns a func(int) int whose funcval is fv: calling it enters fv's
// code with RDX = fv.
func via(fv *closureVal) func(int) int {
	var f func(int) int
	*(*unsafe.Pointer)(unsafe.Pointer(&f)) = unsafe.Pointer(fv)
	return f
}

func funcvalOf(f func(int) int) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&f)) }

func codeOf(f func(int) int) uintptr { return *(*uintptr)(funcvalOf(f)) }

//go:noinline
func adder(k int) func(int) int { return func(x int) int { return x + k } }

var (
	plusOne = func(x int) int { return x + 1 }
	times2  = func(x int) int { return x * 2 }
	minus   = func(x int) int { return -x }
	times10 = func(x int) int { return x * 10 }
)

// callChecker returns a check that f(x) returns want, reported under name.
func callChecker(t *testing.T) func(name string, f func(int) int, x, want int) {
	return func(name string, f func(int) int, x, want int) {
		t.Helper()
		if got := f(x); got != want {
			t.Errorf("%s: f(%d) = %d, want %d", name, x, got, want)
		}
	}
}

// TestDispatcherRules drives a hand-made site through every rule: the
// global target, guards by RAX, by RDX and by label word in order, the
// fall-through to the global target and to the original with RDX intact,
// and the morestack-restart rule.
func TestDispatcherRules(t *testing.T) {
	t.Run("site", func(t *testing.T) { dispatcherRules(t, handSite) })
	t.Run("slot", func(t *testing.T) { dispatcherRules(t, handSlot) })
}

// handSlot writes a slot of a slot page by hand, entered after its pop
// rbp:
//
//	pop rbp; call [rip+hdr]; jmp r12
//
// with slotDispatcher's address in the page's first word and the *Route in
// the data page after it, SlotRouteOffset past the call's return address.
// It returns the slot's entry.
func handSlot(t *testing.T, r *Route) uintptr {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, 2*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(mem[0:], uint64(SlotDispatcherPC()))
	const slot = 16
	code := []byte{0x5D, 0xFF, 0x15, 0, 0, 0, 0, 0x41, 0xFF, 0xE4}
	rel := int32(-(slot + 7)) // to the page's first word
	binary.LittleEndian.PutUint32(code[3:], uint32(rel))
	copy(mem[slot:], code)
	binary.LittleEndian.PutUint64(mem[slot+7+SlotRouteOffset:], uint64(uintptr(unsafe.Pointer(r))))
	if err := unix.Mprotect(mem[:4096], unix.PROT_READ|unix.PROT_EXEC); err != nil {
		t.Fatal(err)
	}
	return uintptr(unsafe.Pointer(&mem[slot+1]))
}

// dispatcherRules checks the dispatcher's rules through a site that mk
// writes.
func dispatcherRules(t *testing.T, mk func(*testing.T, *Route) uintptr) {
	route := new(Route) // reachable: the test holds it until the end
	site := mk(t, route)
	// The original is a closure's code: it reads its captured k through
	// RDX, so it returns x+k only when RDX reaches it untouched.
	orig := adder(1000)
	route.SetOriginal(codeOf(orig))
	a := &closureVal{code: site, k: 7}
	b := &closureVal{code: site, k: 9}
	callA, callB := via(a), via(b)

	check := callChecker(t)
	check("rule 2: no target, original with RDX kept (a)", callA, 5, 12)
	check("rule 2: no target, original with RDX kept (b)", callB, 5, 14)

	route.Store(funcvalOf(plusOne))
	check("rule 2: global target", callA, 5, 6)

	route.SetGuards([]Guard{
		{RAX: 3, RDX: uintptr(unsafe.Pointer(b)), Target: funcvalOf(minus)},
		{RAX: 3, Target: funcvalOf(times2)},
		{RDX: uintptr(unsafe.Pointer(b)), Target: funcvalOf(times10)},
	})
	check("rule 3: RAX and RDX guard", callB, 3, -3)
	check("rule 3: RAX guard", callA, 3, 6)
	check("rule 3: RDX guard", callB, 4, 40)
	check("rule 3: no guard holds, global target", callA, 4, 5)

	route.Store(nil)
	check("rule 3: no guard holds, original with RDX kept", callA, 4, 11)
	check("rule 3: guard holds without global target", callB, 4, 40)

	route.SetGuards(nil)
	check("guards cleared", callB, 4, 13)
	if route.Guards() != nil {
		t.Errorf("Guards after clearing = %v", route.Guards())
	}

	// Rule 1: called from originalCall (as Original's restart is), the
	// site runs the original whatever the target and guards say.
	route.Store(funcvalOf(times2))
	route.SetGuards([]Guard{{RAX: 4, Target: funcvalOf(minus)}})
	restart := &[3]uintptr{originalCallPC(), site, 0}
	var viaStub func(int) int
	*(*unsafe.Pointer)(unsafe.Pointer(&viaStub)) = unsafe.Pointer(restart)
	// The stub passes its own funcval in RDX; the original here reads
	// RDX's second word (the site's address) as k.
	check("rule 1: restart goes to the original", viaStub, 4, 4+int(site))
	check("rule 1 leaves other calls alone", callA, 4, -4)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(route)
}

// TestLabelGuard: a guard on the label word matches on the goroutine whose
// g holds that word and on no other, and never while the offset is 0.
func TestLabelGuard(t *testing.T) {
	route := new(Route)
	site := handSite(t, route)
	route.SetOriginal(codeOf(adder(1)))
	call := via(&closureVal{code: site, k: 0})
	// g's second word is its stack's upper bound: different per goroutine.
	const off = 8
	mine := gWord(off)
	route.SetGuards([]Guard{{Label: mine, Target: funcvalOf(times10)}})
	if got := call(3); got != 3 {
		t.Fatalf("label offset 0: got %d, want the original's 3", got)
	}
	SetLabelOffset(off)
	defer SetLabelOffset(0)
	if got := call(3); got != 30 {
		t.Fatalf("own goroutine: got %d, want 30", got)
	}
	var wg sync.WaitGroup
	var other int
	wg.Add(1)
	go func() {
		defer wg.Done()
		other = call(3)
	}()
	wg.Wait()
	if other != 3 {
		t.Fatalf("other goroutine: got %d, want the original's 3", other)
	}
	runtime.KeepAlive(route)
}

func TestGuardsCopy(t *testing.T) {
	var r Route
	gs := []Guard{{RAX: 1, Target: funcvalOf(plusOne)}, {RAX: 2}, {RDX: 3, Target: funcvalOf(times2)}}
	r.SetGuards(gs)
	gs[0].RAX = 99
	got := r.Guards()
	if len(got) != 2 || got[0].RAX != 1 || got[1].RDX != 3 {
		t.Fatalf("Guards = %+v: want the two with targets, copied", got)
	}
	if r.fast != nil {
		t.Fatal("fast path set while guarded")
	}
	r.Store(funcvalOf(plusOne))
	if r.fast != nil || r.Load() != funcvalOf(plusOne) {
		t.Fatal("Store while guarded")
	}
	r.SetGuards(nil)
	if r.fast != funcvalOf(plusOne) {
		t.Fatal("fast path not restored when the guards went")
	}
}

func TestDispatcherEntries(t *testing.T) {
	if DispatcherPC() == 0 || CallDispatcherPC() == 0 || DispatcherPC() == CallDispatcherPC() {
		t.Fatalf("dispatcher %#x, call dispatcher %#x", DispatcherPC(), CallDispatcherPC())
	}
	if originalRet <= originalCallPC() || originalRet > originalCallPC()+256 {
		t.Fatalf("originalRet %#x is not inside originalCall %#x", originalRet, originalCallPC())
	}
}

//go:noinline
func twelve(a, b, c, d, e, f, g, h, i, j, k, l int) (int, int, int, int, int, int, int, int, int, int) {
	return a + l, b * k, c - j, d, e, f, g, h, i, a + b + c + d + e + f + g + h + i + j + k + l
}

// TestOriginalCallStackArgs: originalCall moves three stack-passed
// arguments and one stack-passed result one frame down and back.
func TestOriginalCallStackArgs(t *testing.T) {
	f := twelve
	code := *(*uintptr)(*(*unsafe.Pointer)(unsafe.Pointer(&f)))
	// 12 int arguments: 9 in registers, 3 (24 bytes) on the stack; 10
	// results: 9 in registers, 1 on the stack.
	fv := &[3]uintptr{OriginalEntryPC(), code, 32}
	var g func(a, b, c, d, e, f, g, h, i, j, k, l int) (int, int, int, int, int, int, int, int, int, int)
	*(*unsafe.Pointer)(unsafe.Pointer(&g)) = unsafe.Pointer(fv)
	r0, r1, r2, _, _, _, _, _, r8, r9 := g(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	if r0 != 13 || r1 != 22 || r2 != -7 || r8 != 9 || r9 != 78 {
		t.Fatalf("got %d %d %d .. %d %d, want 13 22 -7 .. 9 78", r0, r1, r2, r8, r9)
	}
}

// handCallSite writes a call-mode patch by hand: an "entry" holding
// call stub, and the stub movabs r13, route; jmp [rip+hdr] with
// callDispatcher's address in the page's first word. It returns the entry.
func handCallSite(t *testing.T, r *Route) uintptr {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(mem[0:], uint64(CallDispatcherPC()))
	const entry, stub = 64, 128
	mem[entry] = 0xE8
	binary.LittleEndian.PutUint32(mem[entry+1:], uint32(int32(stub-(entry+5))))
	code := []byte{0x49, 0xBD}
	code = binary.LittleEndian.AppendUint64(code, uint64(uintptr(unsafe.Pointer(r))))
	rel := int32(-(stub + len(code) + 6))
	code = append(code, 0xFF, 0x25)
	code = binary.LittleEndian.AppendUint32(code, uint32(rel))
	copy(mem[stub:], code)
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		t.Fatal(err)
	}
	return uintptr(unsafe.Pointer(&mem[entry]))
}

// TestCallDispatcherRules: the call-mode entry applies the same rules as
// the site-mode one, with the route handed over in R13.
func TestCallDispatcherRules(t *testing.T) {
	route := new(Route)
	entry := handCallSite(t, route)
	route.SetOriginal(codeOf(adder(1000)))
	a := &closureVal{code: entry, k: 7}
	b := &closureVal{code: entry, k: 9}
	callA, callB := via(a), via(b)
	check := callChecker(t)
	check("no target: original with RDX kept", callA, 5, 12)
	route.Store(funcvalOf(plusOne))
	check("global target", callA, 5, 6)
	route.SetGuards([]Guard{
		{RAX: 3, Target: funcvalOf(times2)},
		{RDX: uintptr(unsafe.Pointer(b)), Target: funcvalOf(times10)},
	})
	check("RAX guard", callA, 3, 6)
	check("RDX guard", callB, 4, 40)
	check("no guard holds: global target", callA, 4, 5)
	route.Store(nil)
	check("no guard holds: original with RDX kept", callA, 4, 11)
	restart := &[3]uintptr{originalCallPC(), entry, 0}
	var viaStub func(int) int
	*(*unsafe.Pointer)(unsafe.Pointer(&viaStub)) = unsafe.Pointer(restart)
	route.Store(funcvalOf(minus))
	check("rule 1: restart goes to the original", viaStub, 3, 3+int(entry))
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(route)
}

// closure2 is the funcval of a func(int, int) int capturing one int.
type closure2 struct {
	code uintptr
	k    int
}

func via2(fv *closure2) func(int, int) int {
	var f func(int, int) int
	*(*unsafe.Pointer)(unsafe.Pointer(&f)) = unsafe.Pointer(fv)
	return f
}

func funcval2(f func(int, int) int) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&f)) }

// growStack uses about n KiB of stack.
//
//go:noinline
func growStack(n int) byte {
	var b [1024]byte
	if n > 1 {
		b[n%1024] = growStack(n - 1)
	}
	return b[n%1024]
}

// TestDispatcherChecks drives every check of the table through a
// hand-made site and a hand-made call-mode patch: each kind of guard (RAX,
// RBX, RDX, the label word, a combination) alone, in front of a guard that
// never holds, and behind one, with a global target and without; each
// call that matches must run the guard's target, each that does not the
// next guard's, the global target or the original (RDX kept).
func TestDispatcherChecks(t *testing.T) {
	const off = 8 // g's second word: its stack's upper bound, per goroutine
	SetLabelOffset(off)
	defer SetLabelOffset(0)
	// The word moves when the stack does: grow it now, and keep the
	// garbage collector from shrinking it (-race frames are large).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	growStack(64)
	mine := gWord(off)
	for _, mode := range []string{"site", "call"} {
		route := new(Route)
		var code uintptr
		if mode == "site" {
			code = handSite(t, route)
		} else {
			code = handCallSite(t, route)
		}
		// The original reads its k through RDX: x*100 + y + k.
		orig := func(k int) func(int, int) int { return func(x, y int) int { return x*100 + y + k } }(1000)
		route.SetOriginal(*(*uintptr)(funcval2(orig)))
		ca, cb := &closure2{code: code, k: 7}, &closure2{code: code, k: 9}
		callA, callB := via2(ca), via2(cb)
		target := func(x, y int) int { return -(x*100 + y) }
		global := func(x, y int) int { return 1 << 20 }
		never := Guard{RAX: 999, Target: funcval2(func(int, int) int { return 999 })}
		type call struct {
			f     func(int, int) int
			k     int // the k f's original reads through RDX
			x, y  int
			miss  bool // what follows the guard, rather than its target
			other bool // called on another goroutine
		}
		kinds := []struct {
			name  string
			g     Guard
			calls []call
		}{
			{"RAX", Guard{RAX: 3}, []call{{callA, 7, 3, 5, false, false}, {callA, 7, 4, 5, true, false}}},
			{"RBX", Guard{RBX: 5}, []call{{callA, 7, 3, 5, false, false}, {callA, 7, 3, 6, true, false}}},
			{"RDX", Guard{RDX: uintptr(unsafe.Pointer(cb))}, []call{{callB, 9, 3, 5, false, false}, {callA, 7, 3, 5, true, false}}},
			{"label", Guard{Label: mine}, []call{{callA, 7, 3, 5, false, false}, {callA, 7, 3, 5, true, true}}},
			{"all", Guard{RAX: 3, RBX: 5, RDX: uintptr(unsafe.Pointer(cb)), Label: mine}, []call{
				{callB, 9, 3, 5, false, false}, {callB, 9, 3, 6, true, false}, {callB, 9, 4, 5, true, false},
				{callA, 7, 3, 5, true, false}, {callB, 9, 3, 5, true, true},
			}},
		}
		for _, k := range kinds {
			g := k.g
			g.Target = funcval2(target)
			for _, layout := range []string{"alone", "first", "second"} {
				gs := map[string][]Guard{"alone": {g}, "first": {g, never}, "second": {never, g}}[layout]
				for _, withGlobal := range []bool{false, true} {
					if withGlobal {
						route.Store(funcval2(global))
					} else {
						route.Store(nil)
					}
					route.SetGuards(gs)
					for _, c := range k.calls {
						want := target(c.x, c.y)
						switch {
						case c.miss && withGlobal:
							want = global(c.x, c.y)
						case c.miss:
							want = c.x*100 + c.y + c.k
						}
						var got int
						if c.other {
							done := make(chan int)
							go func() { done <- c.f(c.x, c.y) }()
							got = <-done
						} else {
							got = c.f(c.x, c.y)
						}
						if got != want {
							t.Errorf("%s mode, %s guard %s, global %v: f(%d, %d) (other goroutine %v) = %d, want %d",
								mode, k.name, layout, withGlobal, c.x, c.y, c.other, got, want)
						}
					}
				}
			}
		}
		route.SetGuards(nil)
		runtime.KeepAlive(ca)
		runtime.KeepAlive(cb)
		runtime.KeepAlive(route)
	}
}

// TestDispatcherDropChecks: a dictionary guard whose target is
// DropDictionary's adapter runs the replacement with the dictionary
// dropped, in site mode (where the check does the adapter's work) and in
// call mode (through the adapter), alone and among other guards; a call
// with another dictionary runs what follows the guard, with every
// argument where it was.
func TestDispatcherDropChecks(t *testing.T) {
	const dict = 0xD1C7
	for _, mode := range []string{"site", "call"} {
		route := new(Route)
		var code uintptr
		if mode == "site" {
			code = handSite(t, route)
		} else {
			code = handCallSite(t, route)
		}
		// The originals of a method (receiver, dictionary, two arguments)
		// and of a function (dictionary, two arguments), each reading k
		// from its closure context.
		origM := func(k int) func(r, d, a, b int) int {
			return func(r, d, a, b int) int { return r*1000000 + d + a*100 + b + k }
		}(7)
		origF := func(k int) func(d, a, b int) int {
			return func(d, a, b int) int { return d*1000 + a*100 + b + k }
		}(7)
		fv := &closure2{code: code, k: 7}
		var method func(r, d, a, b int) int
		*(*unsafe.Pointer)(unsafe.Pointer(&method)) = unsafe.Pointer(fv)
		var fn func(d, a, b int) int // a generic function: the dictionary first
		*(*unsafe.Pointer)(unsafe.Pointer(&fn)) = unsafe.Pointer(fv)

		implM := func(r, a, b int) int { return -(r*10000 + a*100 + b) }
		implF := func(a, b int) int { return -(a*100 + b) }
		never := Guard{RDX: 1, Target: funcval2(func(int, int) int { return 999 })}
		for _, k := range []struct {
			name      string
			orig      uintptr
			g         Guard
			hit, miss func() int
			want      int
			missWant  int
		}{
			{"RBX", **(**uintptr)(unsafe.Pointer(&origM)), Guard{RBX: dict, Target: DropDictionary(*(*unsafe.Pointer)(unsafe.Pointer(&implM)), 1)},
				func() int { return method(3, dict, 4, 5) }, func() int { return method(3, dict+1, 4, 5) },
				-30405, 3000000 + dict + 1 + 405 + 7},
			{"RAX", **(**uintptr)(unsafe.Pointer(&origF)), Guard{RAX: dict, Target: DropDictionary(*(*unsafe.Pointer)(unsafe.Pointer(&implF)), 0)},
				func() int { return fn(dict, 4, 5) }, func() int { return fn(dict+1, 4, 5) },
				-405, (dict+1)*1000 + 405 + 7},
		} {
			route.SetOriginal(k.orig)
			for _, layout := range []string{"alone", "first", "second"} {
				route.SetGuards(map[string][]Guard{"alone": {k.g}, "first": {k.g, never}, "second": {never, k.g}}[layout])
				if got := k.hit(); got != k.want {
					t.Errorf("%s mode, %s guard %s: hit = %d, want %d", mode, k.name, layout, got, k.want)
				}
				if got := k.miss(); got != k.missWant {
					t.Errorf("%s mode, %s guard %s: miss = %d, want %d", mode, k.name, layout, got, k.missWant)
				}
			}
		}
		route.SetGuards(nil)
		runtime.KeepAlive(fv)
		runtime.KeepAlive(route)
	}
}
