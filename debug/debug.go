package debug

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/registry"
)

// Redirect is one row of the JSON form.
type Redirect struct {
	Func      string    `json:"func"`
	Entry     string    `json:"entry"` // hex address
	Scope     string    `json:"scope"`
	Target    string    `json:"target"`
	Active    bool      `json:"active"`
	Tactic    string    `json:"tactic"`
	Mode      string    `json:"mode"`
	Site      string    `json:"site"` // hex address
	SetAt     time.Time `json:"set_at"`
	Retargets int       `json:"retargets"`
}

// Handler returns the read-only handler.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	rows := rows(registry.List())
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Redirects []Redirect `json:"redirects"`
		}{rows})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	page.Execute(w, struct {
		Now       time.Time
		Redirects []Redirect
	}{time.Now(), rows})
}

func rows(list []registry.Redirect) []Redirect {
	out := make([]Redirect, 0, len(list))
	for _, r := range list {
		out = append(out, Redirect{
			Func: r.Func, Entry: fmt.Sprintf("%#x", r.Entry), Scope: r.Scope, Target: r.Target, Active: r.Active,
			Tactic: r.Tactic, Mode: r.Mode, Site: fmt.Sprintf("%#x", r.Site), SetAt: r.SetAt, Retargets: r.Retargets,
		})
	}
	return out
}

// wantsJSON: ?format=json, or an Accept header naming application/json
// before any text/html.
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	accept := r.Header.Get("Accept")
	j, h := strings.Index(accept, "application/json"), strings.Index(accept, "text/html")
	return j >= 0 && (h < 0 || j < h)
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Switchboard redirects</title>
<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}tr:nth-child(even){background:#f4f4f4}.off{color:#888}</style>
</head><body>
<h1>Switchboard redirects</h1>
<p>{{len .Redirects}} patched functions at {{.Now.Format "2006-01-02 15:04:05 MST"}}. <a href="?format=json">JSON</a></p>
<table>
<tr><th>function</th><th>scope</th><th>target</th><th>tactic</th><th>mode</th><th>set at</th><th>retargets</th><th>entry</th><th>site</th></tr>
{{range .Redirects}}<tr{{if not .Active}} class="off"{{end}}><td>{{.Func}}</td><td>{{.Scope}}</td><td>{{if .Active}}{{.Target}}{{else}}(original){{end}}</td><td>{{.Tactic}}</td><td>{{.Mode}}</td><td>{{.SetAt.Format "2006-01-02 15:04:05.000"}}</td><td>{{.Retargets}}</td><td>{{.Entry}}</td><td>{{.Site}}</td></tr>
{{end}}</table>
</body></html>
`))
