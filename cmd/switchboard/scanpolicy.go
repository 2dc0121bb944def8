package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/switchboard-go/switchboard/registry"
)

// policySentinels name the sentinels registry.Check and registry.CheckC
// refuse with, for the registry field and the totals.
var policySentinels = []struct {
	name string
	err  error
}{
	{"not-entry", registry.ErrNotEntry},
	{"closure", registry.ErrClosure},
	{"method-value", registry.ErrMethodValue},
	{"generic", registry.ErrGeneric},
	{"wrapper", registry.ErrWrapper},
	{"protected", registry.ErrProtected},
	{"inlined", registry.ErrInlined},
	{"no-symbols", registry.ErrNoSymbols},
}

// policySentinel is the short name of the sentinel err wraps: "" for nil,
// "other" for one this list lacks.
func policySentinel(err error) (name string, sentinel error) {
	if err == nil {
		return "", nil
	}
	for _, s := range policySentinels {
		if errors.Is(err, s.err) {
			return s.name, s.err
		}
	}
	return "other", nil
}

// registryReason is a refusal's detail: the error's text after the
// sentinel's own (registry wraps a sentinel with ": " and the detail).
func registryReason(err error) string {
	var e *registry.Error
	if errors.As(err, &e) {
		err = e.Err
	}
	msg := err.Error()
	if _, s := policySentinel(err); s != nil {
		msg = strings.TrimPrefix(msg, s.Error()+": ")
	}
	return oneLine(msg)
}

// registryWhy is the registry field of a function's JSON line: "" when
// registry's policy accepts it, else "sentinel: reason".
func registryWhy(err error) string {
	name, _ := policySentinel(err)
	if name == "" {
		return ""
	}
	return name + ": " + registryReason(err)
}

// policyTotals counts the functions registry's policy accepts and its
// refusals by sentinel, most frequent first.
func (rep *scanReport) policyTotals() (accepted int, refusals []scanCount) {
	by := map[string]int{}
	for _, r := range rep.results {
		if r.policy == nil {
			accepted++
			continue
		}
		name, _ := policySentinel(r.policy)
		by[name]++
	}
	for name, n := range by {
		refusals = append(refusals, scanCount{name, n})
	}
	slices.SortFunc(refusals, func(a, b scanCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name))
	})
	return accepted, refusals
}

// writePolicyTotals writes how many functions registry's policy accepts,
// and how many of those the planner patches too: what Set would do.
func (rep *scanReport) writePolicyTotals(w io.Writer) {
	all := len(rep.results)
	accepted, refusals := rep.policyTotals()
	both := 0
	for _, r := range rep.results {
		if r.policy == nil && r.patch != nil {
			both++
		}
	}
	fmt.Fprintf(w, "\n  %-28s %7d %8.2f%%\n", "registry accepts", accepted, 100*share(accepted, all))
	for _, c := range refusals {
		fmt.Fprintf(w, "  %-28s %7d %8.2f%%\n", "  refused: "+c.name, c.n, 100*share(c.n, all))
	}
	fmt.Fprintf(w, "  %-28s %7d %8.2f%%\n", "registry and planner accept", both, 100*share(both, all))
}
