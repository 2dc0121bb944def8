package gomonkeysuite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/registry"
)

const (
	gomonkey = "github.com/agiledragon/gomonkey/v2"
	version  = "v2.13.0"
	// goconvey is the version gomonkey v2.13.0's go.mod requires.
	goconvey = "github.com/smartystreets/goconvey v1.6.4"
	compat   = "github.com/switchboard-go/switchboard/compat/gomonkey"
	peer     = "gomonkeypeer" // the temporary module
)

// A run is one build of the suite and what may make a test fail in it.
type run struct {
	name  string
	flags []string
	// refusals are the engine errors a test may fail with; none means
	// every test must pass.
	refusals []error
}

func TestGomonkeySuite(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches gomonkey and builds its suite")
	}
	work := prepare(t)
	runs := []run{
		// The build gomonkey's own CI uses (ut.sh adds -N). Every test
		// passes: the tiny leaf fake.(*PrivateMethodStruct).ok (test
		// rax,rax; setne al; ret), which a non-PIE binary has no relay
		// window for, is patched by evicting its setne (evict-jump).
		{"-gcflags=all=-l", []string{"-gcflags=all=-l"}, nil},
		// PIE loads the text high, which opens relay windows below
		// functions.
		{"-gcflags=all=-l -buildmode=pie", []string{"-gcflags=all=-l", "-buildmode=pie"}, nil},
		// Inlining on: targets the compiler inlined are refused loudly.
		{"no flags", nil, []error{registry.ErrInlined}},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) { r.check(t, work) })
	}
}

// check runs the suite and judges every top-level test.
func (r run) check(t *testing.T, work string) {
	args := append([]string{"test", "-count=1", "-json"}, r.flags...)
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Dir = work
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	results, perr := parse(out)
	if perr != nil || len(results) == 0 {
		t.Fatalf("go test: %v, %v\n%s", err, perr, stderr.String())
	}
	var passed, failed []string
	why := map[string]int{}
	for _, res := range results {
		if res.pass {
			passed = append(passed, res.name)
			continue
		}
		failed = append(failed, res.name)
		reason, ok := r.explain(res.output)
		if !ok {
			t.Errorf("%s failed, not through a refusal this build allows (%v):\n%s", res.name, r.refusals, res.output)
			continue
		}
		why[reason]++
	}
	t.Logf("%d of %d tests pass; failed: %v; refusals seen: %v", len(passed), len(results), failed, why)
	if len(r.refusals) == 0 && len(failed) > 0 {
		t.Errorf("%d tests failed; all must pass", len(failed))
	}
}

// explain says which allowed refusal made a test fail. A goconvey
// assertion failure ("Expected ... Actual") means a call reached the wrong
// function: a silent miss, never explained.
func (r run) explain(output string) (string, bool) {
	if strings.Contains(output, "Failures:") || strings.Contains(output, "Expected") {
		return "", false
	}
	for _, line := range strings.Split(output, "\n") {
		if !strings.Contains(line, "switchboard: ") {
			continue
		}
		known := slices.ContainsFunc(r.refusals, func(e error) bool { return strings.Contains(line, e.Error()) })
		if !known {
			return "", false
		}
	}
	for _, e := range r.refusals {
		if strings.Contains(output, e.Error()) {
			return e.Error(), true
		}
	}
	return "", false
}

type result struct {
	name   string
	pass   bool
	output string
}

// parse reads go test -json: one result per top-level test.
func parse(out []byte) ([]result, error) {
	byName := map[string]*result{}
	var order []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var ev struct{ Action, Package, Test, Output string }
		if err := dec.Decode(&ev); err != nil {
			return nil, err
		}
		if ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		key := ev.Package + "." + ev.Test
		res := byName[key]
		if res == nil {
			res = &result{name: ev.Test}
			byName[key] = res
			order = append(order, key)
		}
		switch ev.Action {
		case "output":
			res.output += ev.Output
		case "pass":
			res.pass = true
		}
	}
	var all []result
	for _, k := range order {
		all = append(all, *byName[k])
	}
	return all, nil
}

// prepare fetches gomonkey through the module proxy and builds the
// temporary module: its test tree with imports pointed at compat/gomonkey.
func prepare(t *testing.T) string {
	dl := exec.Command("go", "mod", "download", "-json", gomonkey+"@"+version)
	out, err := dl.Output()
	if err != nil {
		t.Fatalf("go mod download %s@%s: %v\n%s", gomonkey, version, err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	rewrite := strings.NewReplacer(
		`"`+gomonkey+`/test/fake"`, `"`+peer+`/test/fake"`,
		`"`+gomonkey+`/dsl"`, `"`+peer+`/dsl"`,
		`"`+gomonkey+`"`, `"`+compat+`"`,
	)
	copied := 0
	for _, sub := range []string{"test", "dsl"} {
		err := filepath.WalkDir(filepath.Join(mod.Dir, sub), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(mod.Dir, path)
			dst := filepath.Join(work, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			copied++
			return os.WriteFile(dst, []byte(rewrite.Replace(string(src))), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	gomod := fmt.Sprintf("module %s\n\ngo 1.26.0\n\nrequire (\n\t%s\n\tgithub.com/switchboard-go/switchboard v0.0.0\n)\n\nreplace github.com/switchboard-go/switchboard => %s\n", peer, goconvey, root)
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = work
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Fatalf("go mod tidy in the suite's module: %v\n%s", err, out)
	}
	if copied == 0 {
		t.Fatal(errors.New("no Go files in gomonkey's test tree"))
	}
	t.Logf("gomonkey %s from %s: %d files copied to %s", version, mod.Dir, copied, work)
	return work
}
