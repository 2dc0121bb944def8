//go:build linux && amd64

package main

import (
	"bufio"
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// policyVerdict is one line of testdata/policyprog's output: what the real
// registry.Set said of one function.
type policyVerdict struct {
	Name     string `json:"name"`
	Entry    string `json:"entry"`
	Sentinel string `json:"sentinel"`
	Err      string `json:"err"`
}

// buildPolicyProg builds testdata/policyprog with go build (DWARF kept).
func buildPolicyProg(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a program")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "policyprog")
	build := exec.Command("go", "build", "-o", bin, "./testdata/policyprog")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// scanRows scans bin and returns its JSON lines, as `switchboard scan
// -json` prints them, by entry.
func scanRows(t *testing.T, bin string) map[string]map[string]any {
	t.Helper()
	rep, err := scanBinary(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	rows := map[string]map[string]any{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if _, ok := row["registry"].(string); !ok {
			t.Fatalf("no registry field: %s", sc.Bytes())
		}
		rows[row["entry"].(string)] = row
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// sentinelOf is the sentinel's name at the start of a registry field.
func sentinelOf(field string) string {
	name, _, _ := strings.Cut(field, ": ")
	return name
}

// TestScanRegistryAgreesWithSet: the scan's registry field for each
// function testdata/policyprog hands to the real registry.Set (one of
// each kind: plain, inlined, //go:noinline, methods, a value method's
// pointer wrapper, a method value, a closure, a generic instantiation,
// protected std and runtime code) names the sentinel Set returned, or is
// "" when Set succeeded or only the planner refused. The child runs
// registry's code live; the scan reads the same binary from its file.
// Before scan applied registry's policy, the field did not exist; with
// scan's Check skipping inlining, "small" fails here.
func TestScanRegistryAgreesWithSet(t *testing.T) {
	bin := buildPolicyProg(t)
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	var verdicts []policyVerdict
	if err := json.Unmarshal(out, &verdicts); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The fixture must cover what it claims: Set's own verdicts.
	want := map[string]string{
		"plain": "", "small": "inlined", "noInline": "", "(*T).Method": "", "T.Value": "",
		"(*T).Value": "wrapper", "t.Method": "method-value", "closure": "", "Pick[int]": "",
		"strconv.Itoa": "protected", "runtime.GC": "protected", "time.Sleep": "protected",
		"asmAdd": "wrapper",
	}
	rows := scanRows(t, bin)
	for _, v := range verdicts {
		if w, ok := want[v.Name]; !ok || w != v.Sentinel {
			t.Errorf("the fixture's Set(%s): %q (%s), want %q", v.Name, v.Sentinel, v.Err, w)
		}
		delete(want, v.Name)
		row, ok := rows[v.Entry]
		if !ok {
			t.Errorf("%s: the scan has no function at %s", v.Name, v.Entry)
			continue
		}
		wantField := v.Sentinel
		if slices.Contains([]string{"unpatchable", "no-relay", "code-write"}, wantField) {
			wantField = "" // the planner's refusal: its own field says it
		}
		field := row["registry"].(string)
		if got := sentinelOf(field); got != wantField {
			t.Errorf("%s (%s): scan says registry %q, Set said %q (%s)", v.Name, row["name"], field, wantField, v.Err)
		} else {
			t.Logf("%-12s %-28s registry %q", v.Name, row["name"], field)
		}
	}
	if len(want) > 0 {
		t.Errorf("the fixture did not try %v", want)
	}
	// The assembly function has two entries of one name: the ABI wrapper
	// func values lead to, which Set refused above, and the assembly body,
	// which no func value leads to: the scan must not accept it either.
	n := 0
	for _, row := range rows {
		if row["name"] == "main.asmAdd" {
			n++
			if row["registry"].(string) == "" {
				t.Errorf("main.asmAdd at %s: registry accepts an assembly function's code", row["entry"])
			}
		}
	}
	if n < 2 {
		t.Errorf("the scan lists %d functions named main.asmAdd, want the ABI wrapper and the body", n)
	}
}

// TestScanRegistryAcceptsOnlyWhatDWARFAllows checks every function of
// testdata/policyprog the scan's registry field accepts against rules
// read independently of registry and unwind, with the standard library's
// DWARF reader and the go command:
//   - no DWARF subprogram of its name is abstract (DW_AT_inline) or the
//     origin of an inlined or out-of-line copy: it was not inlined;
//   - its DWARF line table does not place its entry in <autogenerated>
//     code, nor in a package `go list -deps` of package registry lists
//     (time excepted, as registry unlocks it) or under runtime/, internal/
//     or vendor/; its name's package is none of those either;
//   - it is no method value (-fm) and no generic shape function (a
//     literal inside one is a closure, whose instances Set takes).
//
// And every function refused as inlined into callers is one DWARF says
// was inlined.
// With scan's Check skipping inlining, the first rule fails.
func TestScanRegistryAcceptsOnlyWhatDWARFAllows(t *testing.T) {
	bin := buildPolicyProg(t)
	rows := scanRows(t, bin)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := f.DWARF()
	if err != nil {
		t.Fatalf("the fixture has no DWARF: %v", err)
	}
	inlined, copies := dwarfInlined(t, d)
	deps := registryDeps(t)
	goroot := goEnv(t, "GOROOT")

	accepted, refusedInlined, abstractOnly := 0, 0, 0
	for _, row := range rows {
		name, field := row["name"].(string), row["registry"].(string)
		if sentinelOf(field) == "inlined" {
			refusedInlined++
			// "into ..." is DWARF's verdict; other reasons are the
			// wrapper of an instantiation that calls no shape function.
			if !inlined[name] && strings.HasPrefix(field, "inlined: into") {
				t.Errorf("%s refused as inlined, DWARF says it was not: %s", name, field)
			}
		}
		if field != "" {
			continue
		}
		accepted++
		entry, err := strconv.ParseUint(strings.TrimPrefix(row["entry"].(string), "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		file := dwarfFile(d, entry)
		var why []string
		if file == "" {
			why = append(why, "DWARF's line table places its entry in no file")
		}
		switch {
		case copies[name]:
			why = append(why, "DWARF has an inlined copy of it")
		case inlined[name]:
			// Only an abstract entry: no copy the binary kept left code.
			// Accepted only when every path calls out (the inline trees
			// would show a copy with code); the -m oracle test checks
			// the compiler's own account.
			abstractOnly++
		}
		if strings.HasSuffix(name, "-fm") {
			why = append(why, "a method value")
		}
		if strings.Contains(name, "go.shape.") && !closureName.MatchString(name) {
			why = append(why, "a generic shape function")
		}
		if file == "<autogenerated>" {
			why = append(why, "compiler-generated")
		}
		if rel, ok := strings.CutPrefix(file, goroot+"/src/"); ok && protectedPkg(path.Dir(rel), deps) {
			why = append(why, "its code is in "+path.Dir(rel))
		}
		if pkg := namePkg(name); protectedPkg(pkg, deps) {
			why = append(why, "package "+pkg)
		}
		if len(why) > 0 {
			t.Errorf("scan says registry accepts %s (%s), but: %s", name, file, strings.Join(why, "; "))
		}
	}
	t.Logf("%d functions, %d accepted (%d with an abstract entry only), %d refused as inlined, %d inlined by DWARF", len(rows), accepted, abstractOnly, refusedInlined, len(inlined))
	if accepted < 20 || refusedInlined == 0 || len(inlined) == 0 {
		t.Fatalf("too little to compare: %d accepted, %d refused as inlined", accepted, refusedInlined)
	}
}

// closureName matches the compiler's names for function literals and the
// wrappers of go and defer statements.
var closureName = regexp.MustCompile(`(\.(func|gowrap|deferwrap)[0-9]+|-range[0-9]+)(\.[0-9]+)*$`)

// dwarfInlined names the functions DWARF says the compiler inlined: the
// abstract subprograms (DW_AT_inline) and the origins of inlined
// subroutines and of concrete copies. copies holds those with an inlined
// subroutine: a copy in a function the binary kept, which left code or
// variables. An abstract entry alone may stand for copies that left
// nothing, or lie in functions the linker dropped.
func dwarfInlined(t *testing.T, d *dwarf.Data) (out, copies map[string]bool) {
	t.Helper()
	names := map[dwarf.Offset]string{}
	var origins, subroutines []dwarf.Offset
	out, copies = map[string]bool{}, map[string]bool{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			break
		}
		if name, ok := e.Val(dwarf.AttrName).(string); ok {
			names[e.Offset] = name
			if e.Tag == dwarf.TagSubprogram && e.Val(dwarf.AttrInline) != nil {
				out[name] = true
			}
		}
		if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok && (e.Tag == dwarf.TagInlinedSubroutine || e.Tag == dwarf.TagSubprogram) {
			origins = append(origins, o)
			if e.Tag == dwarf.TagInlinedSubroutine {
				subroutines = append(subroutines, o)
			}
		}
	}
	for _, o := range origins {
		if n, ok := names[o]; ok {
			out[n] = true
		}
	}
	for _, o := range subroutines {
		if n, ok := names[o]; ok {
			copies[n] = true
		}
	}
	return out, copies
}

// dwarfFile is the source file DWARF's line table gives for pc.
func dwarfFile(d *dwarf.Data, pc uint64) string {
	r := d.Reader()
	cu, err := r.SeekPC(pc)
	if err != nil {
		return ""
	}
	lr, err := d.LineReader(cu)
	if err != nil || lr == nil {
		return ""
	}
	var le dwarf.LineEntry
	if err := lr.SeekPC(pc, &le); err != nil {
		return ""
	}
	return le.File.Name
}

// registryDeps is `go list -deps` of package registry, time excepted.
func registryDeps(t *testing.T) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "./registry")
	cmd.Dir = "../.."
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = p != "time"
	}
	return deps
}

func protectedPkg(pkg string, deps map[string]bool) bool {
	return deps[pkg] || pkg == "runtime" || strings.HasPrefix(pkg, "runtime/") ||
		strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "vendor/")
}

// namePkg is the import path in a Go symbol: up to the first dot after
// the last slash.
func namePkg(name string) string {
	slash := strings.LastIndexByte(name, '/')
	if dot := strings.IndexByte(name[slash+1:], '.'); dot >= 0 {
		return name[:slash+1+dot]
	}
	return name
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}
