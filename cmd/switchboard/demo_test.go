package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo for 2 s with -json output: every line must be a
// JSON object, the last one the summary; no call may return a wrong result
// and every kind of operation must have happened.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	s, err := demo(demoConfig{duration: 4 * time.Second, workers: 4, json: true, out: &out, targets: serviceTargets})
	if err != nil {
		t.Fatal(err)
	}
	var seconds int
	var last map[string]any
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if last["type"] == "second" {
			seconds++
		}
	}
	if seconds != 4 || last["type"] != "summary" {
		t.Errorf("got %d per-second lines and a last line of type %v, want 4 and summary", seconds, last["type"])
	}
	t.Logf("%.1fs: %d calls, %d patches, %d retargets, %d resets, %d wrong, %d GCs",
		s.Seconds, s.Calls, s.Patches, s.Retargets, s.Resets, s.Wrong, s.GCs)
	if s.Wrong != 0 || s.Failures != 0 {
		t.Errorf("%d wrong results, %d failures", s.Wrong, s.Failures)
	}
	if s.Calls == 0 || s.Patches == 0 || s.Retargets == 0 || s.Resets == 0 {
		t.Errorf("calls %d, patches %d, retargets %d, resets %d: want all > 0", s.Calls, s.Patches, s.Retargets, s.Resets)
	}
	for _, f := range s.Functions {
		if f.Tactic == "" || f.Patches == 0 {
			t.Errorf("%s: tactic %q after %d patches", f.Name, f.Tactic, f.Patches)
		}
	}
}

// TestDemoFlagsWrongResults runs the demo with one model deliberately
// wrong: the method value's results no longer match what the checker
// expects, so the demo must count wrong results and fail.
func TestDemoFlagsWrongResults(t *testing.T) {
	broken := func(s *service) []*patchTarget {
		ts := serviceTargets(s)
		const methodValue = 3
		if !strings.HasPrefix(ts[tPrice].impls[methodValue], "method value") {
			t.Fatalf("price's implementation %d is %q", methodValue, ts[tPrice].impls[methodValue])
		}
		right := ts[tPrice].models[methodValue]
		ts[tPrice].models[methodValue] = func(q int) int { return right(q) + 1<<4 }
		return ts
	}
	var out bytes.Buffer
	s, err := demo(demoConfig{duration: time.Second, workers: 4, out: &out, targets: broken})
	if err == nil || s.Wrong == 0 {
		t.Fatalf("err %v, %d wrong: the broken model went unnoticed\n%s", err, s.Wrong, out.String())
	}
	t.Logf("%d wrong results, as expected: %v", s.Wrong, err)
	if !strings.Contains(s.WrongResults[0], "method value") {
		t.Errorf("first wrong result %q does not name the method value", s.WrongResults[0])
	}
}

// TestDemoCheck checks the checker without patching: a result from an
// implementation that is not allowed any more is wrong.
func TestDemoCheck(t *testing.T) {
	ts := serviceTargets(newService())
	log := newAllowedLog(ts)
	g0 := log.gen.Load()
	orig, closure := price(7), ts[tPrice].models[1](7)
	if !ts[tPrice].matches(7, orig, log.allowed(g0, g0, tPrice)) {
		t.Fatal("the original's result is rejected before any patch")
	}
	log.publish(tPrice, 1<<0|1<<1) // a Set from the original to the closure is under way
	log.publish(tPrice, 1<<1)      // it returned
	g2 := log.gen.Load()
	if !ts[tPrice].matches(7, orig, log.allowed(g0, g2, tPrice)) || !ts[tPrice].matches(7, closure, log.allowed(g0, g2, tPrice)) {
		t.Error("a call spanning the Set rejects the old or the new result")
	}
	if ts[tPrice].matches(7, orig, log.allowed(g2, g2, tPrice)) {
		t.Error("a call that started after Set returned may return the original's result")
	}
	if ts[tPrice].matches(7, orig+1, ts[tPrice].all()) {
		t.Error("a result no implementation returns is accepted")
	}
	if ts[tNextID].matches(7, nextID(7), log.allowed(g2, g2, tNextID)) != true {
		t.Error("publishing one target changed another")
	}
	// A reader that fell behind by a whole ring allows everything.
	for range logRows {
		log.publish(tPrice, 1<<1)
	}
	if m := log.allowed(g0, g0, tPrice); m != ts[tPrice].all() {
		t.Errorf("stale reader got mask %b, want all %b", m, ts[tPrice].all())
	}
}

func TestDemoArgs(t *testing.T) {
	for _, args := range [][]string{{"-duration", "0s"}, {"-workers", "0"}, {"extra"}} {
		if err := runDemo(args); err == nil {
			t.Errorf("runDemo(%q) accepted", args)
		}
	}
}
