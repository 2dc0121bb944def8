package registrytest_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/registrytest"
)

// TestSetIsScopedToTheTestsGoroutines: parallel tests patch one function
// at once and each sees its own replacement, from its own goroutine and
// from goroutines it starts after the Set; a goroutine started before the
// Set and the rest of the process see the original.
func TestSetIsScopedToTheTestsGoroutines(t *testing.T) {
	orig := level(1)
	var both sync.WaitGroup
	both.Add(2)
	t.Run("group", func(t *testing.T) {
		for _, v := range []int{100, 200} {
			t.Run(fmt.Sprint(v), func(t *testing.T) {
				t.Parallel()
				before := make(chan int)
				start := make(chan struct{})
				go func() { <-start; before <- level(1) }()
				registrytest.Set(t, level, func(int) int { return v })
				both.Done()
				both.Wait() // both patches are in force now
				after := make(chan int)
				go func() { after <- level(1) }()
				close(start)
				if got := []int{level(1), <-after, <-before}; got[0] != v || got[1] != v || got[2] != orig {
					t.Errorf("test goroutine, goroutine started after, before = %v; want %d, %d, %d", got, v, v, orig)
				}
				if got := level(1); got != v {
					t.Errorf("while the other test is patched too: %d, want %d", got, v)
				}
			})
		}
		// Not yet run: parallel subtests start when this function returns.
		if got := level(1); got != orig {
			t.Errorf("parent goroutine: %d, want the original %d", got, orig)
		}
	})
	if got := level(1); got != orig {
		t.Fatalf("after the tests: %d, want the original %d", got, orig)
	}
}

// TestScopedUnwindsInOrder: stacked scoped patches in a test and in a
// subtest started after them (so in the same goroutine tree) unwind in
// order, and the global patch under them is in force again after them.
func TestScopedUnwindsInOrder(t *testing.T) {
	orig := level(1)
	t.Cleanup(func() {
		if got := level(1); got != orig {
			t.Errorf("after every cleanup: %d, want the original %d", got, orig)
		}
	})
	registrytest.SetGlobal(t, level, func(int) int { return 5 })
	t.Run("outer", func(t *testing.T) {
		t.Cleanup(func() {
			// Registered first, so it runs after the scoped patches' cleanups.
			if got := level(1); got != 5 {
				t.Errorf("after the scoped cleanups: %d, want the global 5", got)
			}
		})
		registrytest.Set(t, level, func(int) int { return 10 })
		registrytest.Set(t, level, func(int) int { return 20 })
		t.Run("inner", func(t *testing.T) {
			registrytest.Set(t, level, func(int) int { return 30 })
			if got := level(1); got != 30 {
				t.Fatalf("inner: %d, want 30", got)
			}
		})
		if got := level(1); got != 20 {
			t.Fatalf("after the inner test: %d, want 20", got)
		}
		done := make(chan int)
		go func() { done <- level(1) }()
		if got := <-done; got != 20 {
			t.Fatalf("goroutine of the test: %d, want 20", got)
		}
	})
	if got := level(1); got != 5 {
		t.Fatalf("after the outer test: %d, want the global 5", got)
	}
}

// Faking time.Now in parallel tests: each test sets its own clock; the
// goroutines it starts afterwards see it too, other tests do not.
func ExampleSet() {
	clocks := []time.Time{
		time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	years := make([][2]int, len(clocks))
	var wg sync.WaitGroup
	for i, clock := range clocks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			test(func(t testing.TB) { // in a real test: func TestX(t *testing.T) { t.Parallel(); ... }
				registrytest.Set(t, time.Now, func() time.Time { return clock })
				worker := make(chan int)
				go func() { worker <- time.Now().Year() }()
				years[i] = [2]int{time.Now().Year(), <-worker}
			})
		}()
	}
	wg.Wait()
	fmt.Println(years, time.Now().Year() > 2002)
	// Output: [[2001 2001] [2002 2002]] true
}
