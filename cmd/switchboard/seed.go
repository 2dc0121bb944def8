package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// runSeed builds testdata/seed with go build and runs it, passing args on.
// go run would strip the program's symbol table (-s), without which
// SetC cannot find the extent of its C functions.
func runSeed(args []string) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprintf(os.Stderr, "usage: switchboard seed [-duration 3s] [-workers 4]\n\n"+
				"Builds and runs testdata/seed: the seed's C function one, called by pthreads,\n"+
				"flipped between replacements in a dlopen'd library more than 2 GiB away.\n"+
				"Run it from inside the Switchboard module; it needs gcc and g++.\n")
			return nil
		}
	}
	for _, tool := range []string{"go", "gcc", "g++"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the seed needs %s: %w", tool, err)
		}
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if _, err := os.Stat(filepath.Join(root, "testdata", "seed", "main.go")); err != nil {
		return fmt.Errorf("run it from inside the Switchboard module: %w", err)
	}
	dir, err := os.MkdirTemp("", "switchboard-seed-bin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "seed")
	build := exec.Command("go", "build", "-o", bin, "./testdata/seed")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./testdata/seed: %w\n%s", err, out)
	}
	run := exec.Command(bin, args...)
	run.Stdout, run.Stderr = os.Stdout, os.Stderr
	if err := run.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("the seed failed (exit status %d)", exit.ExitCode())
		}
		return err
	}
	return nil
}
