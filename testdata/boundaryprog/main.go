// Command boundaryprog is the child of registry's ptrace boundary test
// (TestBoundaryStops). It holds a victim of every prologue shape, calls
// them on one thread locked to a goroutine, and patches them on command,
// so that the test, tracing that one thread, can stop it at an exact
// instruction boundary while the patch is written.
//
// Protocol, one line each way. At start it prints, per victim,
//
//	victim I NAME TACTIC ENTRY SITE ORIG PATCHED
//
// (entry and site in hex, ORIG and PATCHED the 32 bytes from the entry,
// hex, before and while redirected), then "tid T" (the calling thread)
// and "ready". Commands on stdin:
//
//	call I X   the calling thread calls victim I with X, later printing
//	           "result I X GOT old|new|wrong"
//	set I      registry.Set(victim, replacement): "set I ok" or "set I err ..."
//	reset I    registry.Reset(victim): "reset I ok" or "reset I err ..."
//	bad I OFF  writes a jmp at the victim's patch point +OFF whose rel32
//	           ignores the pins (see writeBad): "bad I ok"
//
// It runs with the GC off, so that no stop-the-world waits for the thread
// the test holds.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/internal/crowd"
	"github.com/switchboard-go/switchboard/registry"
)

// The victims mirror registry/shapes_test.go.

//go:noinline
func leafRet(x int) int { return x }

//go:noinline
func leafZero(x int) int { return 0 }

//go:noinline
func leafInc(x int) int { return x + 1 }

type rec struct {
	_ [23]byte
	b uint8
	n int
}

//go:noinline
func leafField(p *rec) int { return int(p.b) }

//go:noinline
func helper(x int) int { return x * 2 }

//go:noinline
func standard(x int) int { return helper(x) + 3 }

//go:noinline
func mediumFrame(x int) int {
	var a [96]int
	for i := range a {
		a[i] = x + i
	}
	return a[x&63] + helper(0)
}

//go:noinline
func hugeFrame(x int) int {
	var a [2100]int
	for i := range a {
		a[i] = x ^ i
	}
	return a[x&1023] + helper(0)
}

//go:noinline
func hugeFrameHigh(x int) int {
	var a [2048]int
	for i := range a {
		a[i] = x ^ i
	}
	return a[x&1023] + helper(1)
}

func plus(a, b int) int { return a + b }

//go:noinline
func nopFirst(x, y int) int { return plus(x, y) }

//go:nosplit
//go:noinline
func pushFirst() int { return pushCallee() + 1 }

//go:noinline
func pushCallee() int { return 40 }

type adder interface{ Add(int) int }

type acc struct{ base int }

//go:noinline
func (a *acc) Add(x int) int { return helper(x) + a.base }

// The tiny methods people mock: evicted in a non-PIE binary.

type mocked struct{ v int }

//go:noinline
func (t *mocked) M(x int) int { return t.v + x }

//go:noinline
func less(a, b int) bool { return a < b }

type nilable struct{ n int }

//go:noinline
func (p *nilable) ok() bool { return p != nil }

// Wide eviction: the second jump runs past the entry's quadword.
type flags struct {
	_ [0x38]byte
	b uint8
}

//go:noinline
func (f *flags) high() int32 { return int32(f.b) & -128 }

// A load at the second boundary: mov rcx,[rax]; mov rax,[rcx+0x88]; ret.
// Every entry window is negative (8b, 81, 88 at +4, +5, +6), so the load
// is evicted and runs from its stub behind a nil check of RCX.
type deepInner struct {
	_ [0x88]byte
	n int
}

type deep struct{ in *deepInner }

//go:noinline
func (d *deep) n() int { return d.in.n }

// Crowded victims: with the low address space taken (BOUNDARYPROG_CROWD=1,
// as in a binary the size of the toolchain's compile), their evictions
// need a chain: the instruction after the evicted one pins its jump's
// rel32 to a taken window, so it is evicted too.

// flags8.transient: movzx ecx,[rax+0xc]; test cl,2; setne al; ret.
type flags8 struct {
	_ [0xc]byte
	f uint8
}

//go:noinline
func (n *flags8) transient() bool { return n.f&2 != 0 }

// lico.xlogue: mov eax,[rax+8]; shr eax,2; and eax,3; ret.
type lico struct {
	_ [8]byte
	l uint32
}

//go:noinline
func (p *lico) xlogue() int { return int(p.l>>2) & 3 }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

type victim struct {
	name       string // as List names it, without the package
	call       func(x int) int
	set, reset func() error
	old, new   func(x int) int
}

func victims() []victim {
	r := &rec{b: 17, n: 5}
	var iface adder = &acc{base: 1000}
	m, p, fl := &mocked{v: 100}, &nilable{n: 7}, &flags{b: 200}
	dp := &deep{in: &deepInner{n: 300}}
	f8, lc := &flags8{f: 2}, &lico{l: 12}
	return []victim{
		{"(*flags8).transient", func(x int) int { return x + b2i(f8.transient()) },
			func() error { return registry.Set((*flags8).transient, func(n *flags8) bool { return false }) },
			func() error { return registry.Reset((*flags8).transient) },
			func(x int) int { return x + 1 }, func(x int) int { return x }},
		{"(*lico).xlogue", func(x int) int { return x + lc.xlogue() },
			func() error { return registry.Set((*lico).xlogue, func(p *lico) int { return 70 }) },
			func() error { return registry.Reset((*lico).xlogue) },
			func(x int) int { return x + 3 }, func(x int) int { return x + 70 }},
		{"leafRet", func(x int) int { return leafRet(x) },
			func() error { return registry.Set(leafRet, func(x int) int { return x + 1_000 }) },
			func() error { return registry.Reset(leafRet) },
			func(x int) int { return x }, func(x int) int { return x + 1_000 }},
		{"leafZero", func(x int) int { return leafZero(x) },
			func() error { return registry.Set(leafZero, func(x int) int { return x + 2_000 }) },
			func() error { return registry.Reset(leafZero) },
			func(x int) int { return 0 }, func(x int) int { return x + 2_000 }},
		{"leafInc", func(x int) int { return leafInc(x) },
			func() error { return registry.Set(leafInc, func(x int) int { return x + 3_000 }) },
			func() error { return registry.Reset(leafInc) },
			func(x int) int { return x + 1 }, func(x int) int { return x + 3_000 }},
		{"leafField", func(x int) int { return leafField(r) + x },
			func() error { return registry.Set(leafField, func(p *rec) int { return int(p.b) + 4_000 }) },
			func() error { return registry.Reset(leafField) },
			func(x int) int { return 17 + x }, func(x int) int { return 4_017 + x }},
		{"standard", func(x int) int { return standard(x) },
			func() error { return registry.Set(standard, func(x int) int { return x + 5_000 }) },
			func() error { return registry.Reset(standard) },
			func(x int) int { return 2*x + 3 }, func(x int) int { return x + 5_000 }},
		{"mediumFrame", func(x int) int { return mediumFrame(x) },
			func() error { return registry.Set(mediumFrame, func(x int) int { return x + 6_000 }) },
			func() error { return registry.Reset(mediumFrame) },
			func(x int) int { return x + x&63 }, func(x int) int { return x + 6_000 }},
		{"hugeFrame", func(x int) int { return hugeFrame(x) },
			func() error { return registry.Set(hugeFrame, func(x int) int { return x + 7_000 }) },
			func() error { return registry.Reset(hugeFrame) },
			func(x int) int { return x ^ x&1023 }, func(x int) int { return x + 7_000 }},
		{"hugeFrameHigh", func(x int) int { return hugeFrameHigh(x) },
			func() error { return registry.Set(hugeFrameHigh, func(x int) int { return x + 7_500 }) },
			func() error { return registry.Reset(hugeFrameHigh) },
			func(x int) int { return x ^ x&1023 + 2 }, func(x int) int { return x + 7_500 }},
		{"nopFirst", func(x int) int { return nopFirst(x, 10) },
			func() error { return registry.Set(nopFirst, func(x, y int) int { return x * y }) },
			func() error { return registry.Reset(nopFirst) },
			func(x int) int { return x + 10 }, func(x int) int { return x * 10 }},
		{"pushFirst", func(x int) int { return pushFirst() + x },
			func() error { return registry.Set(pushFirst, func() int { return 8_000 }) },
			func() error { return registry.Reset(pushFirst) },
			func(x int) int { return 41 + x }, func(x int) int { return 8_000 + x }},
		{"Add", func(x int) int { return iface.Add(x) },
			func() error { return registry.Set((*acc).Add, func(a *acc, x int) int { return a.base*2 + x }) },
			func() error { return registry.Reset((*acc).Add) },
			func(x int) int { return 2*x + 1000 }, func(x int) int { return 2000 + x }},
		{"(*flags).high", func(x int) int { return 1000*x + int(fl.high()) },
			func() error { return registry.Set((*flags).high, func(f *flags) int32 { return 7 }) },
			func() error { return registry.Reset((*flags).high) },
			func(x int) int { return 1000*x + 128 }, func(x int) int { return 1000*x + 7 }},
		{"(*mocked).M", func(x int) int { return m.M(x) },
			func() error { return registry.Set((*mocked).M, func(t *mocked, x int) int { return t.v*2 + x }) },
			func() error { return registry.Reset((*mocked).M) },
			func(x int) int { return 100 + x }, func(x int) int { return 200 + x }},
		{"less", func(x int) int { return b2i(less(x, x+1)) },
			func() error { return registry.Set(less, func(a, b int) bool { return a > b }) },
			func() error { return registry.Reset(less) },
			func(x int) int { return 1 }, func(x int) int { return 0 }},
		{"(*deep).n", func(x int) int { return x + dp.n() },
			func() error { return registry.Set((*deep).n, func(d *deep) int { return 2 * d.in.n }) },
			func() error { return registry.Reset((*deep).n) },
			func(x int) int { return x + 300 }, func(x int) int { return x + 600 }},
		{"(*nilable).ok", func(x int) int { return b2i(p.ok()) },
			func() error { return registry.Set((*nilable).ok, func(q *nilable) bool { return q == nil }) },
			func() error { return registry.Reset((*nilable).ok) },
			func(x int) int { return 1 }, func(x int) int { return 0 }},
	}
}

// window is how many bytes from the entry are reported.
const window = 32

var sayMu sync.Mutex

// say prints one line at once: the calling thread and main both talk.
func say(format string, args ...any) {
	sayMu.Lock()
	defer sayMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

// textPtr is the address of a text byte.
func textPtr(addr uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

// code copies the window of text from entry. Byte by byte: go1.26.8's
// compiler panics (disjointTypes) lowering a copy out of this memory.
func code(entry uintptr) []byte {
	b := make([]byte, window)
	for i := range b {
		b[i] = *(*byte)(textPtr(entry + uintptr(i)))
	}
	return b
}

// layout is where a victim is and what its patch looks like.
type layout struct {
	entry, site uintptr
	orig, patch []byte // window bytes from the entry: unpatched, patched
}

// crowdTop is how much low address space BOUNDARYPROG_CROWD=1 takes:
// relay windows then need a rel32 top byte of 0x70 or more.
const crowdTop = 0x70000000

func main() {
	debug.SetGCPercent(-1)
	runtime.GOMAXPROCS(4)
	crowded := os.Getenv("BOUNDARYPROG_CROWD") == "1"
	if crowded {
		if _, err := crowd.Low(crowdTop); err != nil {
			say("fatal crowd: %v", err)
			os.Exit(1)
		}
	}
	vs := victims()
	if crowded {
		// Only the tiny leaves: the other shapes may find no window at
		// all in the crowded space (ErrNoRelay, nothing written).
		vs = slices.DeleteFunc(vs, func(v victim) bool {
			return !strings.HasPrefix(v.name, "(*") && v.name != "less"
		})
	}
	lays := make([]layout, len(vs))
	// Every patch is planned at the first Set and kept: what is read
	// here is what every later Set writes.
	for i, v := range vs {
		if err := v.set(); err != nil {
			say("fatal set %s: %v", v.name, err)
			os.Exit(1)
		}
		var r registry.Redirect
		for _, x := range registry.List() {
			if strings.HasSuffix(x.Func, "."+v.name) {
				r = x
			}
		}
		if r.Entry == 0 {
			say("fatal %s not in List", v.name)
			os.Exit(1)
		}
		patched := code(r.Entry)
		if err := v.reset(); err != nil {
			say("fatal reset %s: %v", v.name, err)
			os.Exit(1)
		}
		lays[i] = layout{r.Entry, r.Site, code(r.Entry), patched}
		say("victim %d %s %s %x %x %x %x", i, v.name, r.Tactic, r.Entry, r.Site, lays[i].orig, patched)
	}

	calls := make(chan [2]int)
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		// Grow the stack for the big frames now, not while traced.
		for _, v := range vs {
			v.call(1)
		}
		tid <- unix.Gettid()
		for c := range calls {
			v, x := vs[c[0]], c[1]
			got, verdict := v.call(x), "wrong"
			switch got {
			case v.old(x):
				verdict = "old"
			case v.new(x):
				verdict = "new"
			}
			say("result %d %d %d %s", c[0], x, got, verdict)
		}
	}()
	say("tid %d", <-tid)
	say("ready")

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) < 2 {
			say("bad command %q", in.Text())
			continue
		}
		i, err := strconv.Atoi(f[1])
		if err != nil || i < 0 || i >= len(vs) {
			say("bad command %q", in.Text())
			continue
		}
		switch f[0] {
		case "call":
			x, err := strconv.Atoi(f[len(f)-1])
			if len(f) != 3 || err != nil {
				say("bad command %q", in.Text())
				continue
			}
			calls <- [2]int{i, x}
		case "set", "reset":
			do := vs[i].set
			if f[0] == "reset" {
				do = vs[i].reset
			}
			if err := do(); err != nil {
				say("%s %d err %v", f[0], i, err)
			} else {
				say("%s %d ok", f[0], i)
			}
		case "bad":
			off := -1
			if len(f) > 2 {
				off, _ = strconv.Atoi(f[2])
			}
			if err := writeBad(lays[i], off); err != nil {
				say("bad %d err %v", i, err)
			} else {
				say("bad %d ok", i)
			}
		default:
			say("bad command %q", in.Text())
		}
	}
}

// writeBad writes, over the victim's patch, a jmp that ignores the pins:
// the same prefixes and opcode with rel32 0x06060606, a site about 100 MiB
// away. 0x06 is undefined in 64-bit mode, so a thread resuming at a
// boundary inside the rel32 faults at once, whatever its registers: a
// deterministic stand-in for the bytes an unpunned rel32 leaves there.
func writeBad(l layout, off int) error {
	// The jmp: the first E9 whose rel32 lands on the site.
	j := -1
	for k := 0; k+5 <= window; k++ {
		if l.patch[k] == 0xE9 && l.entry+uintptr(k+5)+uintptr(int64(int32(binary.LittleEndian.Uint32(l.patch[k+1:])))) == l.site {
			j = k
			break
		}
	}
	if j < 0 {
		return fmt.Errorf("no jmp to the site in % x", l.patch)
	}
	if off < 0 || off > j {
		return fmt.Errorf("patch point +%d after the jmp at +%d", off, j)
	}
	bad := append([]byte{}, l.patch[:j+5]...)
	for k := off; k < j; k++ {
		bad[k] = 0x3E // ds: prefixes whatever the instructions under them
	}
	copy(bad[j+1:], []byte{0x06, 0x06, 0x06, 0x06})
	page := unsafe.Slice((*byte)(textPtr(l.entry&^0xFFF)), 0x2000)
	if err := unix.Mprotect(page, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC); err != nil {
		return err
	}
	for i, b := range bad {
		*(*byte)(textPtr(l.entry + uintptr(i))) = b
	}
	if err := unix.Mprotect(page, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	return dispatch.SyncCores()
}
