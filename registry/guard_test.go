package registry_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-go/switchboard/registry"
)

// Victims of the scoped patches. Each has a stack check (it calls helper),
// so its trampoline is the common one, and returns values from which the
// caller can tell which body ran.

//go:noinline
func treeVictim(x int) int { return helper(x) + 7 } // 2x+7

//go:noinline
func stormTree(x int) int { return helper(x) + 9 } // 2x+9

type counter struct{ n int }

//go:noinline
func (c *counter) get(x int) int { return helper(c.n) + x } // 2n+x

type other struct{ n int }

type number interface{ ~int | ~string }

//go:noinline
func double[T number](x T) T { return x + x }

type myInt int

// pt and pt2 share one shape: struct { a, b int }.
type pt struct{ a, b int }
type pt2 struct{ a, b int }

//go:noinline
func pick[T any](x, y T, first bool) T {
	if first {
		return x
	}
	return y
}

// list's methods are patched per instantiation: list[int] and list[myInt]
// share a shape, and so do list[pt] and list[pt2]. size's shape function
// takes the receiver in RAX, the dictionary in RBX, then v and x, so a
// replacement reading v and x checks that the adapter moved them.
type list[T any] struct{ n int }

//go:noinline
func (l *list[T]) size(v T, x int) int { return helper(x) + l.n } // 2x+n

// many takes eight integer arguments besides its receiver: with the
// dictionary, ten registers.
//
//go:noinline
func (l *list[T]) many(a, b, c, d, e, f, g, h int) int { return a + b + c + d + e + f + g + h + l.n }

// pair's receiver takes two registers, so its dictionary comes in RCX.
type pair[T any] struct{ a, b T }

//go:noinline
func (p pair[T]) first() T { return p.a }

type sizer[T any] interface{ size(T, int) int }

// celsius's receiver is passed in X0, so its dictionary comes in RAX.
type celsius[T any] float64

//go:noinline
func (c celsius[T]) scale(x int) float64 { return float64(c) * float64(x) }

// nine takes nine integer registers; with the dictionary, ten.
//
//go:noinline
func nine[T number](a, b, c, d, e, f, g, h, i T) T { return a + b + c + d + e + f + g + h + i }

// makeAdder returns one instance of the same literal per call.
//
//go:noinline
func makeAdder(k int) func(int) int { return func(x int) int { return helper(x) + k } }

// captureFree captures nothing: one static funcval.
var captureFree = func(x int) int { return helper(x) + 100 }

func scopesOf(name string) map[string]string {
	out := map[string]string{}
	for _, r := range registry.List() {
		if strings.HasSuffix(r.Func, "."+name) && r.Active {
			out[r.Scope] = r.Target
		}
	}
	return out
}

func TestForGoroutineTree(t *testing.T) {
	defer registry.Reset(treeVictim)
	impl := func(x int) int { return -x }
	done := make(chan error)
	go func() {
		// A goroutine started before the Set, and after.
		before := make(chan int)
		release := make(chan struct{})
		go func() { <-release; before <- treeVictim(5) }()
		if err := registry.SetWith(treeVictim, impl, registry.ForGoroutine()); err != nil {
			done <- err
			return
		}
		after := make(chan int)
		go func() {
			inner := make(chan int)
			go func() { inner <- treeVictim(5) }()
			after <- treeVictim(5) + 1000*<-inner
		}()
		close(release)
		if got, b, a := treeVictim(5), <-before, <-after; got != -5 || b != 17 || a != -5-5000 {
			done <- fmt.Errorf("in the tree %d (want -5), started before %d (want 17), started after and its child %d (want -5005)", got, b, a)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := treeVictim(5); got != 17 {
		t.Fatalf("outside the tree: %d, want 17", got)
	}
	sc := scopesOf("treeVictim")
	if len(sc) != 1 || !strings.HasPrefix(firstKey(sc), "goroutine tree ") {
		t.Fatalf("List scopes: %v", sc)
	}
	// ResetWith from outside the tree removes nothing.
	must(t, registry.ResetWith(treeVictim, registry.ForGoroutine()))
	if len(scopesOf("treeVictim")) != 1 {
		t.Fatal("ResetWith from another goroutine removed the tree's patch")
	}
	must(t, registry.Reset(treeVictim))
	if len(scopesOf("treeVictim")) != 0 || treeVictim(5) != 17 {
		t.Fatal("Reset left a patch")
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

// TestManyTrees: 16 goroutine trees each patch treeVictim their own way
// while a global patch flips underneath, in the flip storm's weather
// (stormEnv); every goroutine of a tree,
// including ones started inside it, must see only its tree's patch, and
// goroutines outside every tree only the original or the global patch.
func TestManyTrees(t *testing.T) {
	defer registry.Reset(treeVictim)
	defer stormEnv(t)()
	const trees = 16
	var (
		stop  atomic.Bool
		wrong atomic.Int64
		first atomic.Value
		calls atomic.Int64
		wg    sync.WaitGroup
		ready sync.WaitGroup
	)
	bad := func(where string, x, got int) {
		if wrong.Add(1) == 1 {
			first.Store(fmt.Sprintf("%s: treeVictim(%d) = %d", where, x, got))
		}
	}
	outside := func(where string) {
		for i := 1; !stop.Load(); i++ {
			x := i & 1023
			if got := treeVictim(x); got != 2*x+7 && got != -x {
				bad(where, x, got)
			}
			calls.Add(1)
		}
	}
	start := make(chan struct{})
	ready.Add(trees)
	for tr := range trees {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start // spin only once every tree is set up
				outside(fmt.Sprintf("started before tree %d", tr))
			}()
			want := func(x int) int { return x*1000 + tr }
			if err := registry.SetWith(treeVictim, want, registry.ForGoroutine()); err != nil {
				bad(err.Error(), 0, 0)
				ready.Done()
				return
			}
			ready.Done()
			<-start
			inside := func(where string) {
				for i := 1; !stop.Load(); i++ {
					x := i & 1023
					if got := treeVictim(x); got != want(x) {
						bad(where, x, got)
					}
					calls.Add(1)
				}
			}
			var in sync.WaitGroup
			for c := range 2 {
				in.Add(1)
				go func() {
					defer in.Done()
					in.Add(1)
					go func() { defer in.Done(); inside(fmt.Sprintf("tree %d, grandchild %d", tr, c)) }()
					inside(fmt.Sprintf("tree %d, child %d", tr, c))
				}()
			}
			inside(fmt.Sprintf("tree %d", tr))
			in.Wait()
			if err := registry.ResetWith(treeVictim, registry.ForGoroutine()); err != nil {
				bad(err.Error(), 0, 0)
			}
			if got := treeVictim(3); got != 13 && got != -3 {
				bad(fmt.Sprintf("tree %d after ResetWith", tr), 3, got)
			}
		}()
	}
	ready.Wait()
	if n := len(scopesOf("treeVictim")); n != trees {
		t.Errorf("List shows %d scoped patches, want %d", n, trees)
	}
	close(start)
	wg.Add(1)
	go func() { defer wg.Done(); outside("outside every tree") }()
	flips := 0
	for deadline := time.Now().Add(flipTime()); time.Now().Before(deadline); flips++ {
		var err error
		if flips&1 == 0 {
			err = registry.Set(treeVictim, func(x int) int { return -x })
		} else {
			err = registry.ResetWith(treeVictim) // the global patch only
		}
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d global flips, %d calls, %d wrong", flips, calls.Load(), wrong.Load())
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d wrong results; first: %v", n, first.Load())
	}
}

func flipTime() time.Duration {
	if testing.Short() {
		return 300 * time.Millisecond
	}
	return time.Second
}

func TestForReceiver(t *testing.T) {
	defer registry.Reset((*counter).get)
	defer stormEnv(t)()
	c1, c2, c3 := &counter{n: 1}, &counter{n: 2}, &counter{n: 3}
	must(t, registry.SetWith((*counter).get, func(c *counter, x int) int { return -x }, registry.ForReceiver(c1)))
	must(t, registry.SetWith((*counter).get, func(c *counter, x int) int { return -x - 1000 }, registry.ForReceiver(c2)))
	var (
		stop  atomic.Bool
		wrong atomic.Int64
		wg    sync.WaitGroup
	)
	check := func(c *counter, want func(x int) [2]int) {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			x := i & 1023
			if got, w := c.get(x), want(x); got != w[0] && got != w[1] {
				wrong.Add(1)
			}
		}
	}
	wg.Add(3)
	go check(c1, func(x int) [2]int { return [2]int{-x, -x} })
	go check(c2, func(x int) [2]int { return [2]int{-x - 1000, -x - 2000} })
	go check(c3, func(x int) [2]int { return [2]int{6 + x, 6 + x} })
	flips := 0
	for deadline := time.Now().Add(flipTime()); time.Now().Before(deadline); flips++ {
		impl := func(c *counter, x int) int { return -x - 1000 }
		if flips&1 == 1 {
			impl = func(c *counter, x int) int { return -x - 2000 }
		}
		if err := registry.SetWith((*counter).get, impl, registry.ForReceiver(c2)); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d wrong results", n)
	}
	sc := scopesOf("(*counter).get")
	if len(sc) != 2 || sc[fmt.Sprintf("receiver %p", c1)] == "" {
		t.Fatalf("List scopes: %v", sc)
	}
	must(t, registry.ResetWith((*counter).get, registry.ForReceiver(c1)))
	if c1.get(1) != 3 || c2.get(1) != -2001 && c2.get(1) != -1001 {
		t.Fatalf("after ResetWith c1: %d %d", c1.get(1), c2.get(1))
	}
	must(t, registry.Reset((*counter).get))
	if c2.get(1) != 5 || len(scopesOf("(*counter).get")) != 0 {
		t.Fatal("Reset left a patch")
	}
}

// TestSpecificity puts a global, a goroutine-tree, a receiver and a
// receiver+tree patch on one method and checks which wins where.
func TestSpecificity(t *testing.T) {
	defer registry.Reset((*counter).get)
	c1, c2 := &counter{n: 1}, &counter{n: 2}
	const global, tree, recv, both = 1_000_000, 2_000_000, 3_000_000, 4_000_000
	must(t, registry.Set((*counter).get, func(c *counter, x int) int { return global + x }))
	must(t, registry.SetWith((*counter).get, func(c *counter, x int) int { return recv + x }, registry.ForReceiver(c1)))
	res := make(chan [2]int)
	go func() {
		must(t, registry.SetWith((*counter).get, func(c *counter, x int) int { return tree + x }, registry.ForGoroutine()))
		must(t, registry.SetWith((*counter).get, func(c *counter, x int) int { return both + x }, registry.ForReceiver(c1), registry.ForGoroutine()))
		res <- [2]int{c1.get(1), c2.get(1)}
	}()
	in := <-res
	if want := [2]int{both + 1, tree + 1}; in != want {
		t.Errorf("in the tree: c1, c2 run %v, want %v", in, want)
	}
	if out, want := [2]int{c1.get(1), c2.get(1)}, [2]int{recv + 1, global + 1}; out != want {
		t.Errorf("outside: c1, c2 run %v, want %v", out, want)
	}
	var scopes []string
	for _, r := range registry.List() {
		if strings.HasSuffix(r.Func, ".(*counter).get") {
			scopes = append(scopes, r.Scope)
		}
	}
	if len(scopes) != 4 || scopes[0] != "global" || !strings.HasPrefix(scopes[1], "receiver ") || !strings.Contains(scopes[1], " + goroutine tree ") ||
		!strings.HasPrefix(scopes[2], "receiver ") || !strings.HasPrefix(scopes[3], "goroutine tree ") {
		t.Errorf("List scopes, want global then most specific first: %q", scopes)
	}

	// An instantiation is more specific again; with a tree, more still.
	defer registry.Reset(double[int])
	must(t, registry.Set(double[int], func(x int) int { return -x }))
	go func() {
		must(t, registry.SetWith(double[int], func(x int) int { return -x - 1000 }, registry.ForGoroutine()))
		res <- [2]int{double(3), double[myInt](3).int()}
	}()
	if got, want := <-res, [2]int{-1003, 6}; got != want {
		t.Errorf("instantiation in the tree: %v, want %v", got, want)
	}
	if got := double(3); got != -3 {
		t.Errorf("instantiation outside the tree: %d, want -3", got)
	}
}

func (m myInt) int() int { return int(m) }

func TestGenericInstantiations(t *testing.T) {
	defer func() {
		for _, err := range []error{registry.Reset(double[int]), registry.Reset(double[myInt]), registry.Reset(double[string]), registry.Reset(pick[pt]), registry.Reset(pick[pt2])} {
			must(t, err)
		}
	}()
	fint, fmy, fstr := double[int], double[myInt], double[string]
	all := func() string {
		return fmt.Sprintf("%v %v %v %v %v %v %v %v", double(3), double(myInt(3)), double("ab"), pick(pt{1, 2}, pt{3, 4}, true), pick(pt2{1, 2}, pt2{3, 4}, true),
			fint(3), fmy(3), fstr("ab"))
	}
	orig := all()
	if orig != "6 6 abab {1 2} {1 2} 6 6 abab" {
		t.Fatalf("before: %s", orig)
	}
	steps := []struct {
		set  func() error
		want string
	}{
		{func() error { return registry.Set(double[int], func(x int) int { return -x }) }, "-3 6 abab {1 2} {1 2} -3 6 abab"},
		{func() error { return registry.Set(double[myInt], func(x myInt) myInt { return x * 100 }) }, "-3 300 abab {1 2} {1 2} -3 300 abab"},
		{func() error { return registry.Set(double[string], strings.ToUpper) }, "-3 300 AB {1 2} {1 2} -3 300 AB"},
		{func() error { return registry.Set(pick[pt2], func(x, y pt2, _ bool) pt2 { return pt2{y.b, y.a} }) }, "-3 300 AB {1 2} {4 3} -3 300 AB"},
		{func() error { return registry.Set(pick[pt], func(x, y pt, _ bool) pt { return pt{0, 0} }) }, "-3 300 AB {0 0} {4 3} -3 300 AB"},
		{func() error { return registry.Reset(double[int]) }, "6 300 AB {0 0} {4 3} 6 300 AB"},
		{func() error { return registry.Reset(pick[pt2]) }, "6 300 AB {0 0} {1 2} 6 300 AB"},
	}
	for i, s := range steps {
		must(t, s.set())
		if got := all(); got != s.want {
			t.Fatalf("step %d: %s, want %s", i, got, s.want)
		}
	}
	sc := scopesOf("double[go.shape.int]")
	if k := firstKey(sc); len(sc) != 1 || !strings.HasPrefix(k, "instantiation ") || !strings.HasSuffix(k, ".double[github.com/switchboard-go/switchboard/registry_test.myInt]") {
		t.Errorf("List scopes of the int shape: %v", sc)
	}
}

func TestClosureInstances(t *testing.T) {
	a1, a2 := makeAdder(1), makeAdder(2)
	defer registry.Reset(a1)
	must(t, registry.Set(a1, func(x int) int { return -x }))
	if got := [2]int{a1(5), a2(5)}; got != [2]int{-5, 12} {
		t.Fatalf("a1, a2 = %v, want [-5 12]", got)
	}
	sc := scopesOf("makeAdder.func1")
	if len(sc) != 1 || !strings.HasPrefix(firstKey(sc), "closure 0x") {
		t.Fatalf("List scopes: %v", sc)
	}
	must(t, registry.Reset(a1))
	if got := [2]int{a1(5), a2(5)}; got != [2]int{11, 12} {
		t.Fatalf("after Reset: %v", got)
	}

	// A literal without captures is one static funcval: its patch is
	// global, every evaluation of the literal is the same value.
	defer registry.Reset(captureFree)
	must(t, registry.Set(captureFree, func(x int) int { return -x }))
	if got := captureFree(5); got != -5 {
		t.Fatalf("captureFree(5) = %d", got)
	}
	for _, r := range registry.List() {
		if strings.Contains(r.Func, "glob..func") && r.Active && r.Scope != "global" {
			t.Errorf("capture-free closure scope %q, want global", r.Scope)
		}
	}
}

// TestGuardRefusals: every refusal is typed and changes neither List nor
// behaviour.
func TestGuardRefusals(t *testing.T) {
	c := &counter{n: 1}
	a := makeAdder(1)
	cases := []struct {
		name string
		err  func() error
		want error
	}{
		{"ForReceiver(nil)", func() error {
			return registry.SetWith((*counter).get, func(*counter, int) int { return 0 }, registry.ForReceiver(nil))
		}, registry.ErrNil},
		{"ForReceiver(nil *counter)", func() error {
			return registry.SetWith((*counter).get, func(*counter, int) int { return 0 }, registry.ForReceiver((*counter)(nil)))
		}, registry.ErrNil},
		{"ForReceiver(non-pointer)", func() error {
			return registry.SetWith((*counter).get, func(*counter, int) int { return 0 }, registry.ForReceiver(counter{}))
		}, registry.ErrTypeMismatch},
		{"ForReceiver(other type)", func() error {
			return registry.SetWith((*counter).get, func(*counter, int) int { return 0 }, registry.ForReceiver(&other{}))
		}, registry.ErrTypeMismatch},
		{"ForReceiver of an instantiation", func() error {
			return registry.SetWith(double[int], func(int) int { return 0 }, registry.ForReceiver(c))
		}, registry.ErrGeneric},
		{"method of a generic type whose receiver takes two registers (dictionary in RCX)", func() error {
			return registry.Set(pair[int].first, func(pair[int]) int { return 0 })
		}, registry.ErrGeneric},
		{"method of a generic type whose arguments no longer fit in registers", func() error {
			return registry.Set((*list[int]).many, func(*list[int], int, int, int, int, int, int, int, int) int { return 0 })
		}, registry.ErrGeneric},
		{"ForReceiver of another instantiation", func() error {
			return registry.SetWith((*list[int]).size, func(*list[int], int, int) int { return 0 }, registry.ForReceiver(&list[myInt]{}))
		}, registry.ErrTypeMismatch},
		{"Original of a generic method", func() error { _, err := registry.Original((*list[int]).size); return err }, registry.ErrGeneric},
		{"instantiation whose arguments no longer fit in registers", func() error {
			return registry.Set(nine[int], func(a, b, c, d, e, f, g, h, i int) int { return 0 })
		}, registry.ErrGeneric},
		{"call mode with a scope", func() error {
			return registry.SetWith(treeVictim, helper, registry.ForGoroutine(), registry.WithMode(registry.CallMode))
		}, registry.ErrModeConflict},
		{"Original of a closure", func() error { _, err := registry.Original(a); return err }, registry.ErrClosure},
		{"Original of an instantiation", func() error { _, err := registry.Original(double[int]); return err }, registry.ErrGeneric},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := registry.List()
			code := [][8]byte{snapshot((*counter).get), snapshot(treeVictim), snapshot(double[int]), snapshot(a), snapshot(pair[int].first), snapshot((*list[int]).size)}
			err := tc.err()
			t.Log(err)
			var re *registry.Error
			if !errors.Is(err, tc.want) || !errors.As(err, &re) {
				t.Fatalf("got %v, want a *registry.Error wrapping %v", err, tc.want)
			}
			if diff := cmp.Diff(before, registry.List()); diff != "" {
				t.Errorf("List changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(code, [][8]byte{snapshot((*counter).get), snapshot(treeVictim), snapshot(double[int]), snapshot(a), snapshot(pair[int].first), snapshot((*list[int]).size)}); diff != "" {
				t.Errorf("code changed:\n%s", diff)
			}
			if c.get(1) != 3 || treeVictim(1) != 9 || double(1) != 2 || a(1) != 3 || nine(1, 1, 1, 1, 1, 1, 1, 1, 1) != 9 ||
				(pair[int]{4, 5}).first() != 4 || (&list[int]{n: 1}).size(7, 3) != 7 || (&list[int]{n: 1}).many(1, 1, 1, 1, 1, 1, 1, 1) != 9 {
				t.Errorf("behaviour changed")
			}
		})
	}
}

// TestParallelFakeNow is the use case goroutine trees exist for: parallel
// tests, each faking time.Now its own way, with goroutines of their own.
func TestParallelFakeNow(t *testing.T) {
	t.Cleanup(func() {
		// After the subtests, on the parent's goroutine: in no tree.
		if y := time.Now().Year(); y < 2026 {
			t.Errorf("outside the trees time.Now() is in %d", y)
		}
		must(t, registry.Reset(time.Now))
	})
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			fake := time.Date(2000+i, 1, 1, 0, 0, 0, 0, time.UTC)
			must(t, registry.SetWith(time.Now, func() time.Time { return fake }, registry.ForGoroutine()))
			defer func() { must(t, registry.ResetWith(time.Now, registry.ForGoroutine())) }()
			got := make(chan time.Time)
			go func() { got <- time.Now() }()
			for range 1000 {
				if now := time.Now(); !now.Equal(fake) {
					t.Fatalf("time.Now() = %v, want %v", now, fake)
				}
			}
			if g := <-got; !g.Equal(fake) {
				t.Fatalf("a goroutine of the test: time.Now() = %v, want %v", g, fake)
			}
		})
	}
}
