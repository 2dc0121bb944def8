// Command routeprog is the child of registry's TestDispatcherStops. It
// holds one method, called through an interface on one thread locked to a
// goroutine, and moves it between a global and a receiver-scoped patch on
// command, so that the test, tracing that thread, can stop it at every
// instruction of the relay and the dispatcher while the route changes.
//
// Protocol, one line each way. At start it prints
//
//	victim 0 Unit TACTIC ENTRY SITE ORIG PATCHED
//	dispatcher START END
//
// (as boundaryprog's victim lines; one dispatcher line per symbol of the
// site-mode dispatcher's code, the dispatcher and the checks of its
// table entries, whose START and END come from the ELF symbol table), then "tid T" and "ready", with the
// method patched globally by promo(20%). Commands on stdin:
//
//	call 0 X   the calling thread calls Unit(X) through the interface,
//	           later printing "result 0 X GOT IMPL", IMPL one of orig,
//	           p20, flat, p30 (what computed GOT), or wrong
//	move 0 K   installs implementation K (0 orig, 1 p20 and 2 flat
//	           global, 3 p30 for this receiver only) as the demo does: the
//	           new patch first, then the old one removed. "move 0 ok"
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
// executable: the dispatcher and its checks, dispatcherRAX and the like.
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
		if strings.HasPrefix(s.Name, "github.com/switchboard-go/switchboard.dispatcher") && s.Size > 0 {
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
	var iface catalog = c
	impls := []func(*cat, int) int{(*cat).Unit, promo(20, 1), flat, promo(30, 3)}
	// What each implementation returns, computed apart from the code
	// under test: Unit itself is patched.
	models := []func(int) int{
		func(x int) int { return c.cents[x&15] << 4 },
		func(x int) int { return c.cents[x&15]*80/100<<4 | 1 },
		func(x int) int { return 100<<4 | 2 },
		func(x int) int { return c.cents[x&15]*70/100<<4 | 3 },
	}
	cur := 0
	move := func(i int) error {
		recv, old := i == 3, cur == 3
		var err error
		switch {
		case i == 0:
			err = registry.Reset((*cat).Unit)
		case recv:
			err = registry.SetWith((*cat).Unit, impls[i], registry.ForReceiver(c))
			if err == nil && cur != 0 && !old {
				err = registry.ResetWith((*cat).Unit)
			}
		default:
			err = registry.Set((*cat).Unit, impls[i])
			if err == nil && old {
				err = registry.ResetWith((*cat).Unit, registry.ForReceiver(c))
			}
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
	say("victim 0 Unit %s %x %x %x %x", r.Tactic, r.Entry, r.Site, orig, code(r.Entry))
	for _, b := range dispatcherBounds() {
		say("dispatcher %x %x", b[0], b[1])
	}

	calls := make(chan int)
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		for x := range calls {
			got, verdict := iface.Unit(x), "wrong"
			for i, m := range models {
				if m(x) == got {
					verdict = names[i]
				}
			}
			say("result 0 %d %d %s", x, got, verdict)
		}
	}()
	say("tid %d", <-tid)
	say("ready")

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		var n int
		var err error
		if len(f) == 3 && f[1] == "0" {
			n, err = strconv.Atoi(f[2])
		}
		switch {
		case len(f) != 3 || f[1] != "0" || err != nil:
			say("bad command %q", in.Text())
		case f[0] == "call":
			calls <- n
		case f[0] == "move" && n >= 0 && n < len(impls):
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
