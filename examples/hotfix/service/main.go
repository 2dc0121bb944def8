// Command service is the hot-fix example: an HTTP service whose pricing
// has a bug, fixed while it runs by a plugin dropped into a directory.
//
//	service -addr 127.0.0.1:8080 -fixes /path/to/fixes
//
// GET /quote?qty=10&unit=100 prices an order. On SIGHUP the service loads
// every *.so in the fixes directory (hotfix.Load, each one batch); on the
// next SIGHUP it undoes them, and so on. /debug/switchboard/ lists the
// redirects in force.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/switchboard-go/switchboard/debug"
	"github.com/switchboard-go/switchboard/examples/hotfix/pricing"
	"github.com/switchboard-go/switchboard/hotfix"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dir := flag.String("fixes", "fixes", "directory of fix plugins (*.so)")
	flag.Parse()
	logger := log.New(os.Stdout, "service: ", 0)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /quote", func(w http.ResponseWriter, r *http.Request) {
		qty, err1 := strconv.Atoi(r.FormValue("qty"))
		unit, err2 := strconv.Atoi(r.FormValue("unit"))
		if err1 != nil || err2 != nil {
			http.Error(w, "want qty and unit, integers", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, pricing.Quote(qty, unit))
	})
	mux.Handle("/debug/switchboard/", debug.Handler())
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		logger.Fatal(err)
	}
	logger.Printf("listening on %s", ln.Addr())

	go func() {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		var applied []*hotfix.Fix
		for range hup {
			if len(applied) > 0 {
				applied = undo(logger, applied)
			} else {
				applied = load(logger, *dir)
			}
		}
	}()
	logger.Fatal(http.Serve(ln, mux))
}

// load applies every fix in dir, in name order. A fix that fails is
// logged and changes nothing; the others still apply.
func load(logger *log.Logger, dir string) []*hotfix.Fix {
	paths, err := filepath.Glob(filepath.Join(dir, "*.so"))
	if err != nil || len(paths) == 0 {
		logger.Printf("no fixes in %s", dir)
		return nil
	}
	slices.Sort(paths)
	var out []*hotfix.Fix
	for _, p := range paths {
		fix, err := hotfix.Load(p)
		if err != nil {
			logger.Printf("refused %s: %v", p, err)
			continue
		}
		logger.Printf("applied %s (%d patches)", p, fix.Patches)
		out = append(out, fix)
	}
	return out
}

// undo reverts the fixes, last applied first, and returns those it could
// not undo.
func undo(logger *log.Logger, fixes []*hotfix.Fix) []*hotfix.Fix {
	var left []*hotfix.Fix
	for i := len(fixes) - 1; i >= 0; i-- {
		if err := fixes[i].Undo(); err != nil {
			logger.Printf("cannot undo %s: %v", fixes[i].Path, err)
			left = append(left, fixes[i])
			continue
		}
		logger.Printf("undone %s", fixes[i].Path)
	}
	return left
}
