// Command routeprog is the child of registry's TestDispatcherStops. It
// holds one method, called through an interface on one thread locked to a
// goroutine, and moves it between a global and a receiver-scoped patch on
// command, so that the test, tracing that thread, can stop it at every
// instruction of the relay and the dispatcher while the route changes.
//
// Protocol, one line each way. At start it prints
//
//	victim V Unit TACTIC ENTRY SITE ORIG PATCHED   (V = 0, 1: the receivers)
//	dispatcher START END
//
// (as boundaryprog's victim lines; one dispatcher line per symbol of the
// site-mode dispatcher's code, the dispatcher and the checks of its table
// entries, with START and END from the ELF symbol table), then "tid T"
// and "ready", with the method patched globally by promo(20%). Commands
// on stdin:
//
//	call V X   the calling thread calls Unit(X) through the interface on
//	           receiver V (0: the one the scoped patch is for, 1: another),
//	           later printing "result V X GOT IMPL", IMPL one of orig,
//	           p20, flat, p30 (what computed GOT for that receiver), or wrong
//	move 0 K   moves to state K: 0 no patch, 1 p20 and 2 flat global, 3
//	           p30 for receiver 0 only, 4 p30 for receiver 0 and p20 for
//	           the others; as the demo does, the new patches first, then
//	           the old ones removed. "move 0 ok"
//
// It runs with the GC off, so that no stop-the-world waits for the thread
// the test holds.
package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard/registry"
)

type cat struct{ cents [16]int }

// Unit is the demo's shape: a leaf method whose first instruction is the
// receiver's nil check.
//
//go:noinline
func (c *cat) Unit(sku int) int { return c.cents[sku&15] << 4 }

type catalog interface{ Unit(int) int }

func promo(pct, tag int) func(*cat, int) int {
	return func(c *cat, sku int) int { return c.cents[sku&15]*(100-pct)/100<<4 | tag }
}

func flat(c *cat, sku int) int { return 100<<4 | 2 }

var names = []string{"orig", "p20", "flat", "p30"}

var sayMu sync.Mutex

func say(format string, args ...any) {
	sayMu.Lock()
	defer sayMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

func fatal(format string, args ...any) {
	say("fatal "+format, args...)
	os.Exit(1)
}

// code copies 32 bytes of text from entry, byte by byte (see boundaryprog).
func code(entry uintptr) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = *(*byte)(unsafe.Add(unsafe.Pointer(nil), entry+uintptr(i)))
	}
	return b
}

// dispatcherBounds reads the bounds of the dispatcher's symbols from this
// executable: the dispatcher and its checks, dispatcherRAX and the like,
// and the slot dispatcher.
func dispatcherBounds() [][2]uint64 {
	exe, err := os.Executable()
	if err != nil {
		fatal("%v", err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		fatal("%v", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		fatal("%v", err)
	}
	var out [][2]uint64
	for _, s := range syms {
		name, ok := strings.CutPrefix(s.Name, "github.com/switchboard-go/switchboard.")
		if ok && (strings.HasPrefix(name, "dispatcher") || name == "slotDispatcher") && s.Size > 0 {
			out = append(out, [2]uint64{s.Value, s.Value + s.Size})
		}
	}
	if len(out) == 0 {
		fatal("no dispatcher symbol")
	}
	return out
}

func main() {
	debug.SetGCPercent(-1)
	runtime.GOMAXPROCS(4)
	c := &cat{}
	for i := range c.cents {
		c.cents[i] = 100 + 37*i
	}
	// other is a second receiver: the scoped patch is not for it.
	other := &cat{}
	for i := range other.cents {
		other.cents[i] = 200 + 41*i
	}
	recvs := []catalog{c, other}
	impls := []func(*cat, int) int{(*cat).Unit, promo(20, 1), flat, promo(30, 3)}
	// What each implementation returns, computed apart from the code
	// under test: Unit itself is patched.
	models := []func(c *cat, x int) int{
		func(c *cat, x int) int { return c.cents[x&15] << 4 },
		func(c *cat, x int) int { return c.cents[x&15]*80/100<<4 | 1 },
		func(c *cat, x int) int { return 100<<4 | 2 },
		func(c *cat, x int) int { return c.cents[x&15]*70/100<<4 | 3 },
	}
	// States: 0 nothing, 1 p20 and 2 flat global, 3 p30 for c only, 4 p30
	// for c and p20 for every other receiver. A move sets what the new
	// state adds before it removes what it drops, as the demo does.
	type state struct{ global, scoped int }
	states := []state{{0, 0}, {1, 0}, {2, 0}, {0, 3}, {1, 3}}
	cur := 0
	move := func(i int) error {
		from, to := states[cur], states[i]
		var err error
		if i == 0 {
			err = registry.Reset((*cat).Unit)
		}
		if err == nil && to.scoped != 0 && from.scoped == 0 {
			err = registry.SetWith((*cat).Unit, impls[to.scoped], registry.ForReceiver(c))
		}
		if err == nil && to.global != 0 && to.global != from.global {
			err = registry.Set((*cat).Unit, impls[to.global])
		}
		if err == nil && i != 0 && to.scoped == 0 && from.scoped != 0 {
			err = registry.ResetWith((*cat).Unit, registry.ForReceiver(c))
		}
		if err == nil && i != 0 && to.global == 0 && from.global != 0 {
			err = registry.ResetWith((*cat).Unit)
		}
		if err == nil {
			cur = i
		}
		return err
	}

	orig := code(uintptr(reflectEntry()))
	if err := move(1); err != nil {
		fatal("set: %v", err)
	}
	var r registry.Redirect
	for _, x := range registry.List() {
		if strings.HasSuffix(x.Func, ".(*cat).Unit") {
			r = x
		}
	}
	if r.Entry == 0 {
		fatal("Unit not in List")
	}
	for i := range recvs {
		say("victim %d Unit %s %x %x %x %x", i, r.Tactic, r.Entry, r.Site, orig, code(r.Entry))
	}
	for _, b := range dispatcherBounds() {
		say("dispatcher %x %x", b[0], b[1])
	}

	calls := make(chan [2]int)
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		for call := range calls {
			v, x := call[0], call[1]
			got, verdict := recvs[v].Unit(x), "wrong"
			for i, m := range models {
				if m(recvs[v].(*cat), x) == got {
					verdict = names[i]
				}
			}
			say("result %d %d %d %s", v, x, got, verdict)
		}
	}()
	say("tid %d", <-tid)
	say("ready")

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		var v, n int
		var err1, err2 error
		if len(f) == 3 {
			v, err1 = strconv.Atoi(f[1])
			n, err2 = strconv.Atoi(f[2])
		}
		switch {
		case len(f) != 3 || err1 != nil || err2 != nil || v < 0 || v >= len(recvs):
			say("bad command %q", in.Text())
		case f[0] == "call":
			calls <- [2]int{v, n}
		case f[0] == "move" && v == 0 && n >= 0 && n < len(states):
			if err := move(n); err != nil {
				say("move 0 err %v", err)
			} else {
				say("move 0 ok")
			}
		default:
			say("bad command %q", in.Text())
		}
	}
}

// reflectEntry is Unit's entry, before any patch.
func reflectEntry() uintptr {
	f := (*cat).Unit
	return **(**uintptr)(unsafe.Pointer(&f))
}
