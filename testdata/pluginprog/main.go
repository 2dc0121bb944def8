// Command pluginprog loads the Go plugin built from testdata/pluginprog/plug
// and patches functions living in it: a flip storm on Victim, called
// through its func value and directly by the plugin's own code, a
// goroutine-scoped patch, and the refusals the plugin's own tables prove
// (inlined, protected, a closure's Original). It prints what it did and
// "OK", or "FAIL: ..." and exits 1.
//
//	go build -buildmode=plugin -o /tmp/plug.so ./testdata/pluginprog/plug
//	go build -o /tmp/pluginprog ./testdata/pluginprog
//	/tmp/pluginprog -duration 2s /tmp/plug.so
//
// Both must be built by the same toolchain from this module.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"plugin"
	"reflect"
	"time"

	"github.com/switchboard-go/switchboard/registry"
	"github.com/switchboard-go/switchboard/testdata/modstorm"
	"github.com/switchboard-go/switchboard/unwind"
)

func main() {
	duration := flag.Duration("duration", 2*time.Second, "how long to storm")
	unlink := flag.Bool("unlink", false, "delete the plugin file once loaded, and check that every patch of its functions is refused")
	flag.Parse()
	r := run
	if *unlink {
		r = func(path string, _ time.Duration) error { return runUnlinked(path) }
	}
	if err := r(flag.Arg(0), *duration); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("OK")
}

func lookup[T any](p *plugin.Plugin, name string) (T, error) {
	var zero T
	s, err := p.Lookup(name)
	if err != nil {
		return zero, err
	}
	if v, ok := s.(T); ok {
		return v, nil
	}
	if v, ok := s.(*T); ok {
		return *v, nil
	}
	return zero, fmt.Errorf("%s is a %T", name, s)
}

func run(path string, d time.Duration) error {
	p, err := plugin.Open(path)
	if err != nil {
		return err
	}
	victim, err1 := lookup[func(int) int](p, "Victim")
	callVictim, err2 := lookup[func(int) int](p, "CallVictim")
	small, err3 := lookup[func(int) int](p, "Small")
	sprint, err4 := lookup[func(...any) string](p, "Sprint")
	closure, err5 := lookup[func(int) int](p, "Closure")
	usesSmall, err6 := lookup[func(int) int](p, "UsesSmall")
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return err
	}
	exe, _ := unwind.ImageAt(reflect.ValueOf(main).Pointer())
	im, err := unwind.ImageAt(modstorm.Entry(victim))
	if err != nil {
		return fmt.Errorf("victim's module: %w", err)
	}
	if im == exe {
		return fmt.Errorf("Victim at %#x is in the executable", modstorm.Entry(victim))
	}
	fmt.Printf("plugin: %s loaded at bias %#x, Victim at %#x\n", im.Path, im.Bias, modstorm.Entry(victim))
	// The first patch of a plugin function reads its DWARF (inlining).
	start := time.Now()
	if _, err := registry.Original(victim); err != nil {
		return err
	}
	fmt.Printf("first Original of Victim: %v\n", time.Since(start).Round(time.Microsecond))

	line, err := modstorm.Run(victim, []func(int) int{callVictim}, d)
	fmt.Println(line)
	if err != nil {
		return err
	}
	if err := modstorm.Scoped(victim); err != nil {
		return err
	}
	// The tactics, for switchboard scan of the plugin file to compare.
	for _, f := range []struct {
		name string
		fn   func(int) int
	}{{"Victim", victim}, {"CallVictim", callVictim}, {"UsesSmall", usesSmall}} {
		if err := registry.Set(f.fn, modstorm.Repl); err != nil {
			return err
		}
		e := modstorm.Entry(f.fn)
		fmt.Printf("tactic: %s file %#x %s\n", f.name, e-im.Bias, modstorm.Tactic(e))
		if err := registry.Reset(f.fn); err != nil {
			return err
		}
	}
	// Lookup by name finds the plugin's function after the program's.
	const victimName = "github.com/switchboard-go/switchboard/testdata/pluginprog/plug.Victim"
	byName, err := registry.Lookup[func(int) int](victimName)
	if err != nil {
		return err
	}
	if modstorm.Entry(byName) != modstorm.Entry(victim) || byName(4) != 9 {
		return fmt.Errorf("Lookup(%s) gives code at %#x, Victim is at %#x", victimName, modstorm.Entry(byName), modstorm.Entry(victim))
	}
	if _, err := registry.Lookup[func(int) int](victimName + "Nope"); !errors.Is(err, registry.ErrNotEntry) {
		return fmt.Errorf("Lookup of no such function: %v", err)
	}
	if _, err := registry.Lookup[func(int, int) int](victimName); !errors.Is(err, registry.ErrTypeMismatch) {
		return fmt.Errorf("Lookup with a type the plugin's DWARF contradicts: %v", err)
	}
	fmt.Printf("lookup: %s at %#x\n", victimName, modstorm.Entry(byName))
	if got := callVictim(4); got != 9 {
		return fmt.Errorf("after Reset CallVictim(4) = %d", got)
	}

	before := registry.List()
	for _, c := range []struct {
		what string
		err  error
		want error
	}{
		{"Set of a function inlined inside the plugin", registry.Set(small, modstorm.Repl), registry.ErrInlined},
		{"Set of the plugin's copy of fmt.Sprint", registry.Set(sprint, func(...any) string { return "" }), registry.ErrProtected},
		{"Original of a closure of the plugin", func() error { _, err := registry.Original(closure); return err }(), registry.ErrClosure},
	} {
		var re *registry.Error
		if !errors.Is(c.err, c.want) || !errors.As(c.err, &re) {
			return fmt.Errorf("%s: %v, want a *registry.Error wrapping %v", c.what, c.err, c.want)
		}
		fmt.Printf("refused: %s: %v\n", c.what, c.err)
	}
	if !reflect.DeepEqual(before, registry.List()) || small(1) != 2 || closure(2) != 6 {
		return errors.New("a refusal changed List or behaviour")
	}
	return nil
}

// runUnlinked deletes the plugin file after loading it: nothing then
// describes the plugin's code (its table, its DWARF), and every patch of
// its functions must be refused with ErrUnsupported, changing nothing.
func runUnlinked(path string) error {
	p, err := plugin.Open(path)
	if err != nil {
		return err
	}
	victim, err := lookup[func(int) int](p, "Victim")
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	before := registry.List()
	for _, c := range []struct {
		what string
		err  error
	}{
		{"Set", registry.Set(victim, modstorm.Repl)},
		{"Original", func() error { _, err := registry.Original(victim); return err }()},
		{"SetWith ForGoroutine", registry.SetWith(victim, modstorm.Repl, registry.ForGoroutine())},
	} {
		var re *registry.Error
		if !errors.Is(c.err, registry.ErrUnsupported) || !errors.As(c.err, &re) {
			return fmt.Errorf("%s of a function of a deleted plugin file: %v, want a *registry.Error wrapping ErrUnsupported", c.what, c.err)
		}
		fmt.Printf("refused: %s: %v\n", c.what, c.err)
	}
	if !reflect.DeepEqual(before, registry.List()) || victim(3) != 7 {
		return errors.New("a refusal changed List or behaviour")
	}
	// The storm line the test expects of every run: nothing flipped here.
	fmt.Println("storm: none, 0 flips, wrong 0")
	return nil
}
