//go:build linux && amd64

package registry_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The boundary tests trace one thread of a child process
// (testdata/boundaryprog) with ptrace, stop it exactly at an instruction
// boundary of a victim's prologue, have the child write the patch (Set) or
// restore it (Reset) while the thread stands there, and resume it: the
// call must return the original's or the replacement's result and must not
// crash. The CPU, not a decoder, says where the boundaries are: the test
// breaks at the entry and single-steps.
//
// The child runs with GODEBUG=asyncpreemptoff=1, so that no preemption
// signal reaches the traced thread while it is stopped or single-stepped,
// and with the GC off, so that no stop-the-world waits on the stopped
// thread while the child patches.

// tracedVictim is one victim as the child reports it, and what the test
// learns by stepping it.
type tracedVictim struct {
	idx           int
	name, tactic  string
	entry, site   uint64
	orig, patched []byte
	off, end      int   // the bytes the patch overwrites, from the entry
	boundaries    []int // offsets the CPU stopped at in [0, end), from the entry on
}

// boundaryChild is the running child, its one traced thread, and the
// stream of its output lines.
type boundaryChild struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	tid     int
	victims []*tracedVictim
	x       int // the next call's argument
	stopped bool
	// dispatcher bounds the dispatcher's code, one range per "dispatcher
	// START END" line, for children that print them.
	dispatcher [][2]uint64
}

const boundaryTimeout = 20 * time.Second

// buildBoundaryProg builds the child once per test.
func buildBoundaryProg(t *testing.T) string {
	t.Helper()
	return buildTracedProg(t, "boundaryprog")
}

// buildTracedProg builds ./testdata/name, a child speaking boundaryprog's
// protocol.
func buildTracedProg(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and traces a child process")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("linux/amd64 only")
	}
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, "./testdata/"+name)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startBoundaryChild starts the child and seizes its calling thread. It
// locks the calling goroutine to its thread for good: ptrace requests must
// come from the thread that attached.
func startBoundaryChild(t *testing.T, bin string, env ...string) *boundaryChild {
	t.Helper()
	runtime.LockOSThread()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), "GODEBUG=asyncpreemptoff=1", "GOGC=off"), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &boundaryChild{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 64), x: 5}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(c.stop)
	for {
		line := c.line()
		f := strings.Fields(line)
		switch {
		case len(f) == 8 && f[0] == "victim":
			v := &tracedVictim{name: f[2], tactic: f[3]}
			v.idx, _ = strconv.Atoi(f[1])
			v.entry, _ = strconv.ParseUint(f[4], 16, 64)
			v.site, _ = strconv.ParseUint(f[5], 16, 64)
			v.orig, _ = hex.DecodeString(f[6])
			v.patched, _ = hex.DecodeString(f[7])
			if v.idx != len(c.victims) || v.entry == 0 || len(v.orig) != 32 || len(v.patched) != 32 {
				t.Fatalf("bad victim line %q", line)
			}
			c.victims = append(c.victims, v)
		case len(f) == 3 && f[0] == "dispatcher":
			var b [2]uint64
			b[0], _ = strconv.ParseUint(f[1], 16, 64)
			b[1], _ = strconv.ParseUint(f[2], 16, 64)
			c.dispatcher = append(c.dispatcher, b)
		case len(f) == 2 && f[0] == "tid":
			c.tid, _ = strconv.Atoi(f[1])
		case line == "ready":
			if c.tid == 0 {
				t.Fatal("child sent no thread id")
			}
			// EXITKILL: the child dies with this thread if the test does.
			if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(c.tid), 0, unix.PTRACE_O_EXITKILL, 0, 0); e != 0 {
				if e == unix.EPERM || e == unix.ENOSYS {
					t.Skipf("ptrace not permitted here (PTRACE_SEIZE: %v)", e)
				}
				t.Fatalf("PTRACE_SEIZE %d: %v", c.tid, e)
			}
			return c
		default:
			t.Fatalf("child: %q", line)
		}
	}
}

// stop kills the child and reaps its traced thread, which its process's
// exit status waits for.
func (c *boundaryChild) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.cmd.Process.Kill()
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(c.tid, &ws, unix.WALL, nil)
		if err != nil || ws.Exited() || ws.Signaled() {
			break
		}
	}
	_ = c.cmd.Wait()
}

// line returns the child's next output line.
func (c *boundaryChild) line() string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("child exited: %v", c.cmd.Wait())
		}
		return l
	case <-time.After(boundaryTimeout):
		c.t.Fatalf("child said nothing for %v", boundaryTimeout)
	}
	return ""
}

// command sends a command that answers at once and checks the answer.
// "bad" takes the patch point as well.
func (c *boundaryChild) command(cmd string, i int) {
	c.t.Helper()
	if cmd == "bad" {
		fmt.Fprintf(c.stdin, "bad %d %d\n", i, c.victims[i].off)
	} else {
		fmt.Fprintf(c.stdin, "%s %d\n", cmd, i)
	}
	want := fmt.Sprintf("%s %d ok", cmd, i)
	if got := c.line(); got != want {
		c.t.Fatalf("%s %s: child answered %q", cmd, c.victims[i].name, got)
	}
}

// wait waits for the traced thread's next stop. A thread that exits or dies
// is a failure of the test's own machinery.
func (c *boundaryChild) wait() unix.WaitStatus {
	c.t.Helper()
	var ws unix.WaitStatus
	if _, err := unix.Wait4(c.tid, &ws, unix.WALL, nil); err != nil {
		c.t.Fatalf("wait4 %d: %v", c.tid, err)
	}
	if !ws.Stopped() {
		c.t.Fatalf("traced thread ended: %#x", ws)
	}
	return ws
}

func (c *boundaryChild) regs() *unix.PtraceRegs {
	c.t.Helper()
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.tid, &r); err != nil {
		c.t.Fatalf("PTRACE_GETREGS: %v", err)
	}
	return &r
}

func (c *boundaryChild) poke(addr uint64, b []byte) {
	c.t.Helper()
	if _, err := unix.PtracePokeText(c.tid, uintptr(addr), b); err != nil {
		c.t.Fatalf("PTRACE_POKETEXT %#x: %v", addr, err)
	}
}

func (c *boundaryChild) peek(addr uint64, n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := unix.PtracePeekText(c.tid, uintptr(addr), b); err != nil {
		c.t.Fatalf("PTRACE_PEEKTEXT %#x: %v", addr, err)
	}
	return b
}

// breakAtEntry makes the thread call victim v and stops it at the entry,
// before the entry's instruction runs, with the code as it was: it plants
// int3 at the entry while the thread waits for work, sends the call, and on
// the trap puts the byte back and rewinds RIP.
func (c *boundaryChild) breakAtEntry(v *tracedVictim) {
	c.t.Helper()
	if err := unix.PtraceInterrupt(c.tid); err != nil {
		c.t.Fatalf("PTRACE_INTERRUPT: %v", err)
	}
	c.wait()
	saved := c.peek(v.entry, 1)
	c.poke(v.entry, []byte{0xCC})
	if err := unix.PtraceCont(c.tid, 0); err != nil {
		c.t.Fatalf("PTRACE_CONT: %v", err)
	}
	fmt.Fprintf(c.stdin, "call %d %d\n", v.idx, c.x)
	for {
		ws := c.wait()
		if ws.StopSignal() == unix.SIGTRAP {
			break
		}
		// Nothing else should reach the thread; a stray preemption
		// request is harmless to drop.
		if ws.StopSignal() != unix.SIGURG {
			c.t.Fatalf("waiting for the breakpoint of %s: stopped by %v", v.name, ws.StopSignal())
		}
		if err := unix.PtraceCont(c.tid, 0); err != nil {
			c.t.Fatalf("PTRACE_CONT: %v", err)
		}
	}
	r := c.regs()
	if r.Rip != v.entry+1 {
		c.t.Fatalf("%s: trapped at %#x, want %#x", v.name, r.Rip, v.entry+1)
	}
	c.poke(v.entry, saved)
	r.Rip = v.entry
	if err := unix.PtraceSetRegs(c.tid, r); err != nil {
		c.t.Fatalf("PTRACE_SETREGS: %v", err)
	}
}

// step single-steps the stopped thread once. It returns the registers
// after the step, or the signal that stopped the thread instead of the
// trap (a fault of the instruction it ran).
func (c *boundaryChild) step() (*unix.PtraceRegs, unix.Signal) {
	c.t.Helper()
	for {
		if err := unix.PtraceSingleStep(c.tid); err != nil {
			c.t.Fatalf("PTRACE_SINGLESTEP: %v", err)
		}
		ws := c.wait()
		switch sig := ws.StopSignal(); sig {
		case unix.SIGTRAP:
			return c.regs(), 0
		case unix.SIGURG:
		default:
			return c.regs(), sig
		}
	}
}

// stopAt stops the thread in a call of v at entry+b, having run the code
// as it stands from the entry.
func (c *boundaryChild) stopAt(v *tracedVictim, b int) {
	c.t.Helper()
	c.breakAtEntry(v)
	for rip, n := v.entry, 0; rip != v.entry+uint64(b); n++ {
		if rip < v.entry || rip >= v.entry+uint64(v.end) || n > 16 {
			c.t.Fatalf("%s: stepping from the entry to +%d left the patch's bytes at %#x", v.name, b, rip)
		}
		r, sig := c.step()
		if sig != 0 {
			c.t.Fatalf("%s: stepping from the entry to +%d: %v at %#x", v.name, b, sig, r.Rip)
		}
		rip = r.Rip
	}
}

// stopOutcome is how the stopped call ended.
type stopOutcome struct {
	verdict string // "old", "new", "wrong", "crash" or "hung"
	detail  string
}

// resume lets the stopped thread run and waits for its call's result, or
// for the fault that kills it.
func (c *boundaryChild) resume(v *tracedVictim) stopOutcome {
	c.t.Helper()
	if err := unix.PtraceCont(c.tid, 0); err != nil {
		c.t.Fatalf("PTRACE_CONT: %v", err)
	}
	deadline := time.Now().Add(boundaryTimeout)
	for time.Now().Before(deadline) {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return stopOutcome{"crash", fmt.Sprintf("child exited: %v", c.cmd.Wait())}
			}
			f := strings.Fields(l)
			if len(f) != 5 || f[0] != "result" || f[1] != strconv.Itoa(v.idx) {
				c.t.Fatalf("%s: child said %q while the call ran", v.name, l)
			}
			return stopOutcome{f[4], "returned " + f[3]}
		case <-time.After(time.Millisecond):
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(c.tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil {
			c.t.Fatalf("wait4: %v", err)
		}
		if pid == 0 {
			continue
		}
		if !ws.Stopped() {
			return stopOutcome{"crash", fmt.Sprintf("thread ended: %#x", ws)}
		}
		switch sig := ws.StopSignal(); sig {
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGTRAP:
			rip := c.regs().Rip
			return stopOutcome{"crash", fmt.Sprintf("%v at %#x (entry%+d)", sig, rip, int64(rip-v.entry))}
		case unix.SIGURG:
			_ = unix.PtraceCont(c.tid, 0)
		default:
			_ = unix.PtraceCont(c.tid, int(sig)) // the child's own business
		}
	}
	return stopOutcome{"hung", fmt.Sprintf("no result in %v", boundaryTimeout)}
}

// learn finds the bytes v's patch overwrites, from the child's view of its
// code while redirected, and the instruction boundaries in them by
// stepping a call of the original from the entry.
func (c *boundaryChild) learn(v *tracedVictim) {
	c.t.Helper()
	// The patch is a jmp to the site, after 0-3 ignored prefixes.
	j := -1
	for k := 0; k+5 <= len(v.patched); k++ {
		rel := int32(binary.LittleEndian.Uint32(v.patched[k+1:]))
		if v.patched[k] == 0xE9 && v.entry+uint64(k+5)+uint64(int64(rel)) == v.site {
			j = k
			break
		}
	}
	if j < 0 {
		c.t.Fatalf("%s: no jmp to the site %#x in % x", v.name, v.site, v.patched)
	}
	v.end = j + 5
	// An evicted boundary's jump runs past the first one: the patch ends
	// after the last byte it changes.
	if v.tactic == "evict-jump" {
		for k := v.end; k < 16; k++ {
			if v.orig[k] != v.patched[k] {
				v.end = k + 1
			}
		}
	}
	c.stopAt(v, 0)
	for rip := v.entry; rip >= v.entry && rip < v.entry+uint64(v.end); {
		v.boundaries = append(v.boundaries, int(rip-v.entry))
		r, sig := c.step()
		if sig != 0 {
			c.t.Fatalf("%s: the original faulted: %v at %#x", v.name, sig, r.Rip)
		}
		rip = r.Rip
	}
	if o := c.resume(v); o.verdict != "old" {
		c.t.Fatalf("%s: stepped call of the original: %s (%s)", v.name, o.verdict, o.detail)
	}
	c.x++
	// The tactics that move the patch point skip the first instruction.
	if strings.HasPrefix(v.tactic, "past-") && len(v.boundaries) > 1 {
		v.off = v.boundaries[1]
	}
	for k := v.off; k < j; k++ {
		if b := v.patched[k]; b != 0x26 && b != 0x36 && b != 0x3E && b&0xF0 != 0x40 {
			c.t.Fatalf("%s (%s): byte +%d of the patch % x is %#02x, not an ignored prefix", v.name, v.tactic, k, v.patched[:v.end], b)
		}
	}
	if j-v.off > 3 || !bytes.Equal(v.orig[:v.off], v.patched[:v.off]) || !bytes.Equal(v.orig[v.end:], v.patched[v.end:]) {
		c.t.Fatalf("%s (%s): patch [+%d,+%d) of % x does not match % x", v.name, v.tactic, v.off, v.end, v.patched, v.orig)
	}
}

// call runs one call of v stopped at boundary b: before resuming, the
// child runs each of cmds (set, reset, bad) while the thread stands there.
//
// At a boundary past the patch point the thread must go on with the
// original instruction, so there the test also steps that instruction
// once before the commands (the reference), rewinds the registers, and
// after the commands steps again: the same next RIP and the same
// registers, or the call is "diverged". Rewinding is sound for the
// instructions prologues have there (ret, jcc, call, register arithmetic):
// run again from the same registers they do the same.
func (c *boundaryChild) call(v *tracedVictim, b int, cmds ...string) stopOutcome {
	c.t.Helper()
	c.stopAt(v, b)
	var ref *unix.PtraceRegs
	if b > v.off {
		before := c.regs()
		var sig unix.Signal
		if ref, sig = c.step(); sig != 0 {
			c.t.Fatalf("%s: the original instruction at +%d faulted: %v", v.name, b, sig)
		}
		if err := unix.PtraceSetRegs(c.tid, before); err != nil {
			c.t.Fatalf("PTRACE_SETREGS: %v", err)
		}
	}
	for _, cmd := range cmds {
		c.command(cmd, v.idx)
	}
	diverged := ""
	if ref != nil {
		got, sig := c.step()
		// An evicted instruction runs from its stub: jmp there, the copy,
		// jmp back. Steps outside the function's bytes are that detour;
		// it must come back where the original's one step went.
		// A stub that nil-checks a pointer first (test r,r; jz) takes
		// two steps more, and its test sets the flags: the planner only
		// checks where the flags are the entry's, which no Go function
		// reads, so they are not compared after a detour that long.
		n := 0
		for ; sig == 0 && n < 4 && got.Rip != ref.Rip && (got.Rip < v.entry || got.Rip >= v.entry+uint64(len(v.orig))); n++ {
			got, sig = c.step()
		}
		if sig != 0 {
			return stopOutcome{"crash", fmt.Sprintf("%v at %#x (entry%+d)", sig, got.Rip, int64(got.Rip-v.entry))}
		}
		if n > 2 {
			got.Eflags = ref.Eflags
		}
		diverged = regsDiff(ref, got, v.entry)
	}
	o := c.resume(v)
	c.x = 5 + (c.x-4)%100
	if diverged != "" && o.verdict != "crash" {
		o = stopOutcome{"diverged", diverged + ", then " + o.verdict + " " + o.detail}
	}
	return o
}

// regsDiff names the registers that differ after the same step of the
// original and of the patched code.
func regsDiff(want, got *unix.PtraceRegs, entry uint64) string {
	const arith = 0x8d5 // CF PF AF ZF SF OF
	type reg struct {
		name      string
		want, got uint64
	}
	var diff []string
	for _, r := range []reg{
		{"rip", want.Rip, got.Rip}, {"rsp", want.Rsp, got.Rsp}, {"rax", want.Rax, got.Rax}, {"rbx", want.Rbx, got.Rbx},
		{"rcx", want.Rcx, got.Rcx}, {"rdx", want.Rdx, got.Rdx}, {"rsi", want.Rsi, got.Rsi}, {"rdi", want.Rdi, got.Rdi},
		{"rbp", want.Rbp, got.Rbp}, {"r8", want.R8, got.R8}, {"r9", want.R9, got.R9}, {"r10", want.R10, got.R10},
		{"r11", want.R11, got.R11}, {"r12", want.R12, got.R12}, {"r13", want.R13, got.R13}, {"r14", want.R14, got.R14},
		{"r15", want.R15, got.R15}, {"flags", want.Eflags & arith, got.Eflags & arith},
	} {
		if r.want != r.got {
			diff = append(diff, fmt.Sprintf("%s %#x, the original's %#x", r.name, r.got, r.want))
		}
	}
	if len(diff) == 0 {
		return ""
	}
	return fmt.Sprintf("stepped from entry%+d: %s", int64(want.Rip-entry), strings.Join(diff, ", "))
}

// boundaryTactics is the tactic each victim exists for, as shapes_test.go
// lists them.
var boundaryTactics = map[string]string{
	"leafRet": "entry-jump", "leafZero": "punned-jump", "leafInc": "punned-jump", "leafField": "prefixed-jump",
	"standard": "punned-jump", "mediumFrame": "entry-jump", "hugeFrame": "prefixed-jump",
	"hugeFrameHigh": "past-scratch", "nopFirst": "past-nop", "pushFirst": "past-push-rbp", "Add": "punned-jump",
	"(*mocked).M": "evict-jump", "less": "evict-jump", "(*nilable).ok": "evict-jump", "(*flags).high": "evict-jump",
	"(*deep).n": "evict-jump", "(*flags8).transient": "prefixed-jump", "(*lico).xlogue": "prefixed-jump",
}

// TestBoundaryStops stops a thread at every instruction boundary each
// victim's patch overwrites, from the entry to the end of the patch, and
// while it stands there has the child:
//
//   - Set the victim (code original when the thread got there): the call
//     returns the replacement's result if the thread had not passed the
//     patch point, otherwise the original's (or, if it then restarts at the
//     entry after a stack check, the replacement's);
//   - Set and Reset it: the call returns the original's result;
//   - Reset it, when the thread got there through the patched code (at the
//     entry and, for the past-* tactics, at the patch point): the original's.
//
// Each call must return and must not fault. It shows that a thread stopped
// at any boundary inside the patch resumes into a correct instruction in
// both directions of the write.
func TestBoundaryStops(t *testing.T) {
	runBoundaryStops(t, startBoundaryChild(t, buildBoundaryProg(t)))
}

// TestBoundaryStopsCrowded is TestBoundaryStops in a child whose low
// address space is taken (BOUNDARYPROG_CROWD=1, internal/crowd), as in a
// binary the size of the toolchain's compile: there the crowded victims'
// evictions are chains, and a thread stopped at each evicted boundary of
// the chain must resume through its stub.
func TestBoundaryStopsCrowded(t *testing.T) {
	c := startBoundaryChild(t, buildBoundaryProg(t), "BOUNDARYPROG_CROWD=1")
	chains := runBoundaryStops(t, c)
	for _, name := range []string{"(*flags8).transient", "(*lico).xlogue"} {
		if chains[name] < 2 {
			t.Errorf("%s: %d evicted boundaries with the low space taken, want a chain", name, chains[name])
		}
	}
}

// runBoundaryStops runs TestBoundaryStops' calls on every victim of c and
// returns, per victim, how many boundaries past the entry its patch
// evicts (jumps whose first byte, E9 or a ds prefix, replaces an
// instruction's).
func runBoundaryStops(t *testing.T, c *boundaryChild) map[string]int {
	chains := map[string]int{}
	tactics := map[string]bool{}
	trials := 0
	for _, v := range c.victims {
		c.learn(v)
		tactics[v.tactic] = true
		if want := boundaryTactics[v.name]; want != v.tactic {
			t.Logf("%s: tactic %s, shapes_test.go expects %s (layout or toolchain): testing it as %s", v.name, v.tactic, want, v.tactic)
		}
		t.Logf("%s @%#x %s: patch [+%d,+%d) % x over % x, boundaries %v",
			v.name, v.entry, v.tactic, v.off, v.end, v.patched[v.off:v.end], v.orig[v.off:v.end], v.boundaries)
		for _, b := range v.boundaries[1:] {
			if x := v.patched[b]; v.tactic == "evict-jump" && x != v.orig[b] && (x == 0xE9 || x == 0x3E) {
				chains[v.name]++
			}
		}
		for _, b := range v.boundaries {
			check := func(what string, o stopOutcome, want ...string) {
				t.Helper()
				trials++
				for _, w := range want {
					if o.verdict == w {
						return
					}
				}
				t.Errorf("%s (%s), thread stopped at +%d, %s: %s (%s), want %s", v.name, v.tactic, b, what, o.verdict, o.detail, strings.Join(want, " or "))
			}
			if b <= v.off {
				check("Set", c.call(v, b, "set"), "new")
			} else {
				check("Set", c.call(v, b, "set"), "old", "new")
			}
			c.command("reset", v.idx)
			check("Set then Reset", c.call(v, b, "set", "reset"), "old")
			if b <= v.off {
				c.command("set", v.idx)
				check("Reset from patched code", c.call(v, b, "reset"), "old")
			}
		}
	}
	for _, tac := range []string{"entry-jump", "punned-jump", "prefixed-jump", "past-nop", "past-push-rbp", "past-scratch", "evict-jump"} {
		if !tactics[tac] {
			t.Logf("no victim got %s here (toolchain or layout): not tested", tac)
		}
	}
	t.Logf("%d stopped calls over %d victims", trials, len(c.victims))
	return chains
}

// TestBoundaryStopsCatchBadPatch shows TestBoundaryStops' machinery failing:
// for each victim with a boundary inside its patch, a thread stopped there
// while the child writes a jmp whose rel32 ignores the pins (what a patcher
// without punning writes) must fault, hang or return a wrong result, and
// the machinery must report it.
func TestBoundaryStopsCatchBadPatch(t *testing.T) {
	bin := buildBoundaryProg(t)
	first := startBoundaryChild(t, bin)
	type target struct{ victim, b int }
	var targets []target
	for _, v := range first.victims {
		first.learn(v)
		for _, b := range v.boundaries {
			if b > v.off {
				targets = append(targets, target{v.idx, b})
				break
			}
		}
	}
	if len(targets) == 0 {
		t.Skip("no victim has a boundary inside its patch")
	}
	caught := 0
	for n, tg := range targets {
		c := first
		if n > 0 {
			c = startBoundaryChild(t, bin)
		}
		v := c.victims[tg.victim]
		if n > 0 {
			c.learn(v)
		}
		o := c.call(v, tg.b, "bad")
		if o.verdict == "old" || o.verdict == "new" {
			t.Errorf("%s: thread at +%d under a non-punned jmp returned a correct result (%s); the check would miss a broken patch", v.name, tg.b, o.detail)
		} else {
			caught++
			t.Logf("%s (%s): thread at +%d under a non-punned jmp: %s, %s", v.name, v.tactic, tg.b, o.verdict, o.detail)
		}
		c.stop()
	}
	if caught != len(targets) {
		t.Errorf("caught %d of %d broken patches", caught, len(targets))
	}
}
