// Command switchboard shows what Switchboard does, what it costs and how
// much of a real program it can patch:
//
//	switchboard demo  [-duration 20s] [-json]   hot-patch a live service under load
//	switchboard bench [-rounds N] [-json]       dispatch overhead, as ratios to a direct call
//	switchboard scan  [-json] [BINARY]          which functions of a binary can be patched, and how
//	switchboard seed  [-duration 3s]            the seed's C function, flipped under pthreads (needs gcc)
package main

import (
	"fmt"
	"os"

	"github.com/switchboard-go/switchboard/internal/rebuild"
)

var commands = map[string]func(args []string) error{
	"demo":  runDemo,
	"bench": runBench,
	"scan":  runScan,
	"seed":  runSeed,
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: switchboard <command> [flags]

commands:
  demo   hot-patch an embedded service while goroutines call it (the main job)
  bench  measure dispatch overhead as ratios to a direct call
  scan   report which functions of an ELF Go binary can be patched
  seed   the seed's C function one, flipped under four pthreads (needs gcc)

Run "switchboard <command> -h" for a command's flags.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		usage()
		os.Exit(2)
	}
	if os.Args[1] != "scan" {
		// go run strips DWARF, without which Set refuses what it cannot
		// prove was not inlined: run from a build that keeps it.
		if err := rebuild.Program(); err != nil {
			fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		}
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "switchboard %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
