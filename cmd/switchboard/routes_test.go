package main

import (
	"testing"
)

// TestRoutesBench builds and runs the generated program for a few routes:
// it patches every victim, checks the three variants compute the same, and
// prints one row per variant.
func TestRoutesBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	rows, err := measureRoutes([]int{3}, 1, 3000, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"site mode", "func variable", "direct"}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.Kind != "routes" || r.Routes != 3 || r.Name != want[i] || r.RatioMedian <= 0 || r.Rounds != 1 {
			t.Errorf("row %d: %+v", i, r)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	got, err := parseRoutes("1,100, 1000,10000")
	if err != nil || len(got) != 4 || got[3] != 10000 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1,,2", "x", "-5", "1000000"} {
		if _, err := parseRoutes(bad); err == nil {
			t.Errorf("parseRoutes(%q) accepted", bad)
		}
	}
}
