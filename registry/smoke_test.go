package registry_test

import (
	"testing"

	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func smokeVictim(x int) int { return x + 1 }

//go:noinline
func smokeImpl(x int) int { return x + 100 }

func TestSmoke(t *testing.T) {
	if got := smokeVictim(1); got != 2 {
		t.Fatalf("before: %d", got)
	}
	if err := registry.Set(smokeVictim, smokeImpl); err != nil {
		t.Fatal(err)
	}
	t.Log(registry.List())
	if got := smokeVictim(1); got != 101 {
		t.Fatalf("after Set: %d", got)
	}
	k := 7
	if err := registry.Set(smokeVictim, func(x int) int { return x * k }); err != nil {
		t.Fatal(err)
	}
	if got := smokeVictim(3); got != 21 {
		t.Fatalf("after retarget: %d", got)
	}
	if err := registry.Reset(smokeVictim); err != nil {
		t.Fatal(err)
	}
	if got := smokeVictim(1); got != 2 {
		t.Fatalf("after Reset: %d", got)
	}
}
