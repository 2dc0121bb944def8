package registry_test

import "github.com/switchboard-go/switchboard/registry"

// Victims of every prologue shape Switchboard patches, each with two
// replacements. A shape's functions return values from which the caller
// can tell which body ran, so a wrong route is a wrong result.

type shape struct {
	name   string
	tactic string // the tactic the planner must choose for this shape
	// call invokes the victim the way this shape's callers do.
	call func(x int) int
	// set redirects the victim to replacement 1 or 2; reset restores it.
	set   func(which int) error
	reset func() error
	// want lists what call(x) may return: original, replacement 1, 2.
	want func(x int) [3]int
}

//go:noinline
func leafRet(x int) int { return x } // c3: 1 byte

//go:noinline
func leafZero(x int) int { return 0 } // xor eax,eax; ret: 3 bytes

//go:noinline
func leafInc(x int) int { return x + 1 } // inc rax; ret: 4 bytes

type rec struct {
	_ [23]byte // puts b at offset 23: movzx eax, byte [rax+0x17]
	b uint8
	n int
}

//go:noinline
func leafField(p *rec) int { return int(p.b) } // movzx eax,[rax+23]; ret: 5 bytes

//go:noinline
func helper(x int) int { return x * 2 }

//go:noinline
func standard(x int) int { return helper(x) + 3 } // cmp rsp,[r14+16]; jbe

//go:noinline
func mediumFrame(x int) int { // lea r12,[rsp-N] (disp32)
	var a [96]int
	for i := range a {
		a[i] = x + i
	}
	return a[x&63] + helper(0)
}

//go:noinline
func hugeFrame(x int) int { // mov r12,rsp; sub r12,N; jb: N's low byte < 0x80
	var a [2100]int
	for i := range a {
		a[i] = x ^ i
	}
	return a[x&1023] + helper(0)
}

// hugeFrameHigh's N has a low byte >= 0x80, which makes every entry
// window negative; the patch goes past mov r12,rsp instead.
//
//go:noinline
func hugeFrameHigh(x int) int {
	var a [2048]int
	for i := range a {
		a[i] = x ^ i
	}
	return a[x&1023] + helper(1)
}

func plus(a, b int) int { return a + b }

// nopFirst starts with the NOP the compiler emits for the inline mark of
// plus, whose body is the single add after it: nop; add rax,rbx; ret.
//
//go:noinline
func nopFirst(x, y int) int { return plus(x, y) }

// pushFirst is NOSPLIT with a frame, so it starts with push rbp, and it
// calls pushCallee at once, whose argument-free call needs no spill area:
// push rbp; mov rbp,rsp; call; the call's opcode pins the rel32.
//
//go:nosplit
//go:noinline
func pushFirst() int { return pushCallee() + 1 }

//go:noinline
func pushCallee() int { return 40 }

type adder interface{ Add(int) int }

type acc struct{ base int }

//go:noinline
func (a *acc) Add(x int) int { return helper(x) + a.base }

// The tiny methods people mock (issue 8's residue): 7 bytes each, a 3-byte
// instruction, a 3-byte one and ret. In a non-PIE binary every window of
// the entry jump's pins lies below address 0, so their second instruction
// is evicted (evict-jump).

type mocked struct{ v int }

//go:noinline
func (t *mocked) M(x int) int { return t.v + x } // add rbx,[rax]; mov rax,rbx; ret

//go:noinline
func less(a, b int) bool { return a < b } // cmp rbx,rax; setg al; ret

type nilable struct{ n int }

//go:noinline
func (p *nilable) ok() bool { return p != nil } // test rax,rax; setne al; ret

// flags.high is the wide eviction's shape: movzx eax,[rax+0x38] (4 bytes);
// and eax,-128 (3); ret. The second jump, at +4, runs to +9: the two jumps
// are written as one aligned octoword (CMPXCHG16B). Its immediate 0x80
// makes every plain window negative in a non-PIE binary.
type flags struct {
	_ [0x38]byte
	b uint8
}

//go:noinline
func (f *flags) high() int32 { return int32(f.b) & -128 }

// deep.n is a load at the second boundary: mov rcx,[rax];
// mov rax,[rcx+0x88]; ret. Its bytes 8b 81 88 at +4..+6 make every entry
// window negative in a non-PIE binary, so the load is evicted and runs
// from its stub behind a nil check of RCX (dispatch.evictNilCheck).
type deepInner struct {
	_ [0x88]byte
	n int
}

type deep struct{ in *deepInner }

//go:noinline
func (d *deep) n() int { return d.in.n }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tinyShapes are the three mocked methods as flip-storm shapes.
func tinyShapes() []shape {
	m := &mocked{v: 100}
	p := &nilable{n: 7}
	fl := &flags{b: 200}
	dp := &deep{in: &deepInner{n: 300}}
	return []shape{
		{
			name: "tiny-load", tactic: "evict-jump",
			call: func(x int) int { return x + dp.n() },
			set: setPair((*deep).n, func(d *deep) int { return 2 * d.in.n },
				func(d *deep) int { return -d.in.n }),
			reset: func() error { return registry.Reset((*deep).n) },
			want:  func(x int) [3]int { return [3]int{x + 300, x + 600, x - 300} },
		},
		{
			name: "tiny-wide", tactic: "evict-jump",
			call: func(x int) int { return 1000*x + int(fl.high()) },
			set: setPair((*flags).high, func(f *flags) int32 { return 7 },
				func(f *flags) int32 { return -int32(f.b) }),
			reset: func() error { return registry.Reset((*flags).high) },
			want:  func(x int) [3]int { return [3]int{1000*x + 128, 1000*x + 7, 1000*x - 200} },
		},
		{
			name: "tiny-method-add", tactic: "evict-jump",
			call: func(x int) int { return m.M(x) },
			set: setPair((*mocked).M, func(t *mocked, x int) int { return t.v*2 + x },
				func(t *mocked, x int) int { return x - t.v }),
			reset: func() error { return registry.Reset((*mocked).M) },
			want:  func(x int) [3]int { return [3]int{100 + x, 200 + x, x - 100} },
		},
		// A bool result has two values, so one call cannot tell three
		// bodies apart: the second replacement agrees with the original
		// on the storm's arguments, and these shapes show no crash and the
		// patch taking effect; tiny-method-add checks the result.
		{
			name: "tiny-less", tactic: "evict-jump",
			call: func(x int) int { return 10*x + b2i(less(x, x+1)) },
			set: setPair(less, func(a, b int) bool { return a > b },
				func(a, b int) bool { return a <= b }),
			reset: func() error { return registry.Reset(less) },
			want:  func(x int) [3]int { return [3]int{10*x + 1, 10 * x, 10*x + 1} },
		},
		{
			name: "tiny-nil-check", tactic: "evict-jump",
			call: func(x int) int { return 10*x + b2i(p.ok()) },
			set: setPair((*nilable).ok, func(q *nilable) bool { return q == nil },
				func(q *nilable) bool { return q.n == 7 }),
			reset: func() error { return registry.Reset((*nilable).ok) },
			want:  func(x int) [3]int { return [3]int{10*x + 1, 10 * x, 10*x + 1} },
		},
	}
}

// shapes lists one victim per prologue shape with its replacements.
func shapes() []shape {
	r := &rec{b: 17, n: 5}
	k := 9
	a := &acc{base: 1000}
	var iface adder = a
	return append([]shape{
		{
			name: "leaf-1-byte", tactic: "entry-jump",
			call:  func(x int) int { return leafRet(x) },
			set:   setPair(leafRet, func(x int) int { return x + 1_000 }, func(x int) int { return x * k }),
			reset: func() error { return registry.Reset(leafRet) },
			want:  func(x int) [3]int { return [3]int{x, x + 1_000, x * k} },
		},
		{
			name: "leaf-3-byte", tactic: "punned-jump",
			call:  func(x int) int { return leafZero(x) },
			set:   setPair(leafZero, func(x int) int { return x + 2_000 }, func(x int) int { return x * k * 2 }),
			reset: func() error { return registry.Reset(leafZero) },
			want:  func(x int) [3]int { return [3]int{0, x + 2_000, x * k * 2} },
		},
		{
			name: "leaf-4-byte", tactic: "punned-jump",
			call:  func(x int) int { return leafInc(x) },
			set:   setPair(leafInc, func(x int) int { return x + 3_000 }, func(x int) int { return -x }),
			reset: func() error { return registry.Reset(leafInc) },
			want:  func(x int) [3]int { return [3]int{x + 1, x + 3_000, -x} },
		},
		{
			name: "leaf-5-byte", tactic: "prefixed-jump",
			call: func(x int) int { return leafField(r) + x },
			set: setPair(leafField, func(p *rec) int { return int(p.b) + 4_000 },
				func(p *rec) int { return p.n * 100 }),
			reset: func() error { return registry.Reset(leafField) },
			want:  func(x int) [3]int { return [3]int{17 + x, 4_017 + x, 500 + x} },
		},
		{
			name: "stack-check", tactic: "punned-jump",
			call:  func(x int) int { return standard(x) },
			set:   setPair(standard, func(x int) int { return x + 5_000 }, func(x int) int { return helper(x) * 3 }),
			reset: func() error { return registry.Reset(standard) },
			want:  func(x int) [3]int { return [3]int{2*x + 3, x + 5_000, 6 * x} },
		},
		{
			name: "medium-frame", tactic: "entry-jump",
			call:  func(x int) int { return mediumFrame(x) },
			set:   setPair(mediumFrame, func(x int) int { return x + 6_000 }, func(x int) int { return x - 6_000 }),
			reset: func() error { return registry.Reset(mediumFrame) },
			want:  func(x int) [3]int { return [3]int{x + x&63, x + 6_000, x - 6_000} },
		},
		{
			name: "huge-frame", tactic: "prefixed-jump",
			call:  func(x int) int { return hugeFrame(x) },
			set:   setPair(hugeFrame, func(x int) int { return x + 7_000 }, func(x int) int { return x - 7_000 }),
			reset: func() error { return registry.Reset(hugeFrame) },
			want:  func(x int) [3]int { return [3]int{x ^ x&1023, x + 7_000, x - 7_000} },
		},
		{
			name: "huge-frame-past-scratch", tactic: "past-scratch",
			call:  func(x int) int { return hugeFrameHigh(x) },
			set:   setPair(hugeFrameHigh, func(x int) int { return x + 7_500 }, func(x int) int { return x - 7_500 }),
			reset: func() error { return registry.Reset(hugeFrameHigh) },
			want:  func(x int) [3]int { return [3]int{x ^ x&1023 + 2, x + 7_500, x - 7_500} },
		},
		{
			name: "nop-first", tactic: "past-nop",
			call:  func(x int) int { return nopFirst(x, 10) },
			set:   setPair(nopFirst, func(x, y int) int { return x * y }, func(x, y int) int { return x - y }),
			reset: func() error { return registry.Reset(nopFirst) },
			want:  func(x int) [3]int { return [3]int{x + 10, x * 10, x - 10} },
		},
		{
			name: "push-rbp-first", tactic: "past-push-rbp",
			call:  func(x int) int { return pushFirst() + x },
			set:   setPair(pushFirst, func() int { return 8_000 }, func() int { return k }),
			reset: func() error { return registry.Reset(pushFirst) },
			want:  func(x int) [3]int { return [3]int{41 + x, 8_000 + x, k + x} },
		},
		{
			name: "method-via-interface", tactic: "punned-jump",
			call: func(x int) int { return iface.Add(x) },
			set: setPair((*acc).Add, func(a *acc, x int) int { return a.base*2 + x },
				(&acc{base: 77}).addTo),
			reset: func() error { return registry.Reset((*acc).Add) },
			want:  func(x int) [3]int { return [3]int{2*x + 1000, 2000 + x, 77 + x} },
		},
	}, tinyShapes()...)
}

// addTo has the method expression's signature, so its method value can
// replace (*acc).Add: it ignores the receiver the caller passes.
func (a *acc) addTo(_ *acc, x int) int { return a.base + x }

// setPair returns a set function choosing between two replacements.
func setPair[F any](fn, one, two F) func(int) error {
	return func(which int) error {
		if which == 1 {
			return registry.Set(fn, one)
		}
		return registry.Set(fn, two)
	}
}
