package debug_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/debug"
	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func victim(x int) int { return double(x) + 1 }

//go:noinline
func double(x int) int { return 2 * x }

//go:noinline
func replacement(x int) int { return double(x) + 2 }

func TestHandler(t *testing.T) {
	start := time.Now()
	if err := registry.Set(victim, replacement); err != nil {
		t.Fatal(err)
	}
	defer registry.Reset(victim)
	if err := registry.Set(victim, func(x int) int { return 0 }); err != nil {
		t.Fatal(err)
	}
	if err := registry.Set(victim, replacement); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(debug.Handler())
	defer srv.Close()

	get := func(t *testing.T, method, query, accept string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/"+query, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	for _, tc := range []struct{ name, query, accept string }{
		{"query", "?format=json", ""},
		{"accept", "", "application/json"},
		{"accept, json first", "", "application/json, text/html;q=0.9"},
	} {
		t.Run("json by "+tc.name, func(t *testing.T) {
			resp, body := get(t, "GET", tc.query, tc.accept)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s %s: %s", resp.Status, resp.Header.Get("Content-Type"), body)
			}
			var doc struct{ Redirects []debug.Redirect }
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatal(err)
			}
			var found *debug.Redirect
			for i, r := range doc.Redirects {
				if strings.HasSuffix(r.Func, "debug_test.victim") {
					found = &doc.Redirects[i]
				}
			}
			if found == nil {
				t.Fatalf("victim not listed: %s", body)
			}
			if !found.Active || found.Scope != "global" || !strings.HasSuffix(found.Target, "debug_test.replacement") ||
				found.Retargets != 2 || found.SetAt.Before(start) || found.SetAt.After(time.Now()) || found.Tactic == "" || !strings.HasPrefix(found.Entry, "0x") {
				t.Errorf("victim's row: %+v", *found)
			}
		})
	}
	t.Run("html", func(t *testing.T) {
		for _, accept := range []string{"", "text/html,application/json"} {
			resp, body := get(t, "GET", "", accept)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
			}
			for _, want := range []string{"<table>", "debug_test.victim", "debug_test.replacement", "<td>global</td>", "<td>2</td>"} {
				if !strings.Contains(body, want) {
					t.Errorf("HTML lacks %q:\n%s", want, body)
				}
			}
		}
	})
	t.Run("head", func(t *testing.T) {
		resp, body := get(t, "HEAD", "?format=json", "")
		if resp.StatusCode != 200 || body != "" {
			t.Errorf("HEAD: %s, body %q", resp.Status, body)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		before := registry.List()
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			resp, _ := get(t, m, "?format=json", "")
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: %s, Allow %q", m, resp.Status, resp.Header.Get("Allow"))
			}
		}
		if got := registry.List(); len(got) != len(before) || victim(1) != 4 {
			t.Error("a refused request changed something")
		}
	})
}
