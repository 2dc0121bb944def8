package registrytest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/registrytest"
)

// Store is a dependency a test replaces.
type Store struct{ data map[string]string }

// Get looks a key up.
//
//go:noinline
func (s *Store) Get(key string) (string, error) {
	v, ok := s.data[key]
	if !ok {
		return "", errors.New("not found: " + key)
	}
	return v, nil
}

// Greeting is the code under test.
func Greeting(s *Store, user string) string {
	name, err := s.Get(user)
	if err != nil {
		return "hello, stranger"
	}
	return "hello, " + name
}

// Normalize is a function a test wraps to count its calls.
//
//go:noinline
func Normalize(s string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(strings.TrimSpace(s)))
	return b.String()
}

// A method on a struct: patch the method expression (*Store).Get; the
// receiver is the replacement's first argument.
func ExampleSetGlobal_method() {
	test(func(t testing.TB) {
		registrytest.SetGlobal(t, (*Store).Get, func(s *Store, key string) (string, error) {
			return "Ada", nil
		})
		fmt.Println(Greeting(&Store{}, "u1"))
	})
	fmt.Println(Greeting(&Store{}, "u1")) // after the test: the original again
	// Output:
	// hello, Ada
	// hello, stranger
}

// A call-through wrapper: registry.Original runs the original body, so a
// replacement can count calls and still do the real work.
func ExampleSetGlobal_callThrough() {
	test(func(t testing.TB) {
		orig, err := registry.Original(Normalize)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		registrytest.SetGlobal(t, Normalize, func(s string) string {
			calls++
			return orig(s)
		})
		fmt.Println(Normalize("  Ada "), Normalize("BOB"))
		fmt.Println("calls:", calls)
	})
	// Output:
	// ada bob
	// calls: 2
}

// test runs body as a test function would run, with a testing.TB whose
// cleanups run when body returns: in a real test, use the test's t.
func test(body func(t testing.TB)) {
	t := &exampleT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.cleanup()
		body(t)
	}()
	<-done
}
