package unwind

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDeclName(t *testing.T) {
	for _, tc := range []struct {
		sym  string
		want decl
	}{
		{"example.com/a/b.F", decl{name: "F"}},
		{"example.com/a/b.(*T).m", decl{"T", "m"}},
		{"example.com/a/b.T.M", decl{"T", "M"}},
		{"example.com/a/b.G[go.shape.int]", decl{name: "G"}},
		{"example.com/a/b.(*T[go.shape.struct { example.com/x.A int }]).M", decl{"T", "M"}},
		{"example.com/a/b.F.func1", decl{}},
		{"example.com/a/b.(*T).m.func2", decl{}},
		{"example.com/a/b.F.gowrap1", decl{}},
		{"example.com/a/b.init.0", decl{}},
		{"example.com/a/b.glob..func1", decl{}},
		{"main.main", decl{name: "main"}},
		{"nodot", decl{}},
	} {
		if got := declName(tc.sym); got != tc.want {
			t.Errorf("declName(%q) = %+v, want %+v", tc.sym, got, tc.want)
		}
	}
}

// TestNoinlineAt: the directive as the compiler reads it (cmd/compile's
// noder takes the verb up to a space, from a // comment at the start of a
// line), above the line that declares the function.
func TestNoinlineAt(t *testing.T) {
	src := []byte("package p\n" +
		"\n" +
		"//go:noinline\n" + // 3
		"func A(x int) int { return x }\n" +
		"\n" +
		"// B doubles.\n" + // 6
		"//\n" +
		"//go:noinline\n" +
		"func (r *R) B() int { return 2 }\n" +
		"\n" +
		"//go:noinline\n" + // 11
		"\n" +
		"func C() {}\n" +
		"\n" +
		"// D is //go:noinline in prose only.\n" + // 15
		"func D() {}\n" +
		"\n" +
		"//go:noinlinex\n" + // 18
		"func E() {}\n" +
		"\n" +
		"func F() {}\n" + // 21
		"\n" +
		"//go:noinline\n" + // 23
		"func G[T any](x T) T { return x }\n" +
		"\n" +
		"\t//go:noinline\n" + // 26
		"func H() {}\n" +
		"\n" +
		"//go:noinline\t// a tab: the verb is \"go:noinline\\t//\"\n" + // 29
		"func I() {}\n" +
		"\n" +
		"/* disabled:\n" + // 32
		"//go:noinline */\n" +
		"func J() {}\n" +
		"\n" +
		"var s = `\n" + // 36
		"//go:noinline `\n" +
		"func K() {}\n" +
		"\n" +
		"//go:noinline // why\n" + // 40
		"func (T[E]) L() {}\n" +
		"\n" +
		"//go:noinline\n" + // 43
		"func (A) M() {}; func (B) M() {}\n" +
		"\n" +
		"//go:noinline\r\n" + // 46
		"func N() {}\n")
	for _, tc := range []struct {
		line int
		d    decl
		want bool
	}{
		{4, decl{name: "A"}, true},
		{9, decl{"R", "B"}, true},
		{13, decl{name: "C"}, false}, // a blank line between: not trusted
		{16, decl{name: "D"}, false},
		{19, decl{name: "E"}, false},
		{21, decl{name: "F"}, false},
		{24, decl{name: "G"}, true},
		{4, decl{name: "AA"}, false}, // the line declares another function
		{3, decl{name: "A"}, false},  // the line is no declaration
		{9, decl{name: "B"}, false},  // a method, not a function
		{9, decl{"S", "B"}, false},   // another receiver type
		{99, decl{name: "A"}, false},
		{27, decl{name: "H"}, false}, // the directive is indented
		{30, decl{name: "I"}, false},
		{34, decl{name: "J"}, false},
		{38, decl{name: "K"}, false},
		{41, decl{"T", "L"}, true},
		{44, decl{"A", "M"}, true},
		{44, decl{"B", "M"}, false},  // the line's first declaration is A's
		{47, decl{name: "N"}, false}, // "go:noinline\r" is not the verb
	} {
		start, ok := lineStart(src, tc.line)
		if got := ok && noinlineAt(src, start, tc.d); got != tc.want {
			t.Errorf("line %d %+v: %v, want %v", tc.line, tc.d, got, tc.want)
		}
	}
}

func TestIgnoredName(t *testing.T) {
	for name, want := range map[string]bool{
		"main.go": false, "x_linux.go": false, "x_amd64.go": false, "x_linux_amd64.go": false,
		"x_test.go": false, "x_linux_test.go": false, "sys_unix.go": false, "my_thing.go": false,
		"_tmpl.go": true, ".hidden.go": true, "tmpl_windows.go": true, "x_arm64.go": true,
		"x_linux_arm64.go": true, "x_darwin_test.go": true, "windows.go": false,
	} {
		if got := ignoredName(name); got != want {
			t.Errorf("ignoredName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestRemapped: a //line directive or a build constraint before the
// declaration makes the file no witness (a review's finding: a //line
// directive pointing at a template with the directive).
func TestRemapped(t *testing.T) {
	for _, tc := range []struct {
		before string
		want   bool
	}{
		{"package p\n\n", false},
		{"// Package p does //line things.\npackage p\n", false},
		{"package p\n\n//line /tmp/x.go:11\n", true},
		// Split: this file's own text must not hold the directive.
		{"package p\n/*" + "line x.go:3:1*/\n", true},
		{"//go:build ignore\n\npackage main\n", true},
		{"// +build ignore\n\npackage main\n", true},
		{"//line x.go:1\npackage p\n", true},
		{"package p\n\nvar x = 1 /*" + "line x.go:3:1*/\n", true},
		{"package p\n\nvar x = 1 //line x.go:3\n", false},
		{"package p\n\nvar s = \"a/b\" // go:build\n/", false},
		{"/", false},
		// The go command reads these constraints too (go1.26.8 lists such
		// files as ignored; a review's finding).
		{"  //go:build ignore\n\npackage p\n", true},
		{"\t// +build ignore\n\npackage p\n", true},
		{"//+build ignore\n\npackage p\n", true},
		{"\ufeff//go:build ignore\n\npackage p\n", true},
		{"package p\n\nvar x = 1 // +build is a comment here\n", false},
		{"package p\n\n// a//go:build in the middle\n", false},
		{"package p\n\n// line 3 of a comment, not a directive\n", false},
		// A block comment's end, then a line directive in a block comment
		// (a review's finding: the scan stepped over the second slash).
		{"package p\n\n/* a *//*" + "line x.go:3:1*/\n", true},
		{"package p\n\nvar x = 1 /**//*" + "line x.go:3:1*/\n", true},
	} {
		if got := firstRemap([]byte(tc.before), 0) >= 0; got != tc.want {
			t.Errorf("firstRemap(%q) found %v, want %v", tc.before, got, tc.want)
		}
	}
}

// TestLineStart crosses lineStart's blocks, and checks it against the
// line index a file gets when asked about twice.
func TestLineStart(t *testing.T) {
	var src []byte
	for i := range 3000 {
		src = append(src, fmt.Sprintf("// line %d\n", i+1)...)
	}
	src = append(src, "//go:noinline\nfunc Far() {}"...)
	indexed := &sourceText{src: src, asked: 2}
	for _, line := range []int{1, 2, 400, 401, 2999, 3000, 3001, 3002} {
		want := fmt.Sprintf("// line %d\n", line)
		switch line {
		case 3001:
			want = "//go:noinline\n"
		case 3002:
			want = "func Far() {}"
		}
		start, ok := lineStart(src, line)
		if !ok || !bytes.HasPrefix(src[start:], []byte(want)) {
			t.Errorf("lineStart(%d) = %d, %v: %.20q", line, start, ok, src[start:])
		}
		if got, ok := indexed.line(line); got != start || !ok {
			t.Errorf("indexed line %d at %d, %v; lineStart says %d", line, got, ok, start)
		}
	}
	if start, ok := lineStart(src, 3002); !ok || !noinlineAt(src, start, decl{name: "Far"}) {
		t.Errorf("noinlineAt(line 3002, Far) = false")
	}
	for _, line := range []int{0, 3003} {
		if _, ok := lineStart(src, line); ok {
			t.Errorf("lineStart(%d): ok", line)
		}
		if _, ok := indexed.line(line); ok {
			t.Errorf("indexed line %d: ok", line)
		}
	}
}

// TestNoInlineReadsTheSource asks NoInline about this package's own
// functions, and checks that a source newer than the binary is not
// trusted.
func TestNoInlineReadsTheSource(t *testing.T) {
	im, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	marked := reflect.ValueOf(noinlineVictim).Pointer()
	plain := reflect.ValueOf(declName).Pointer()
	if !im.NoInline(marked) {
		t.Errorf("NoInline(noinlineVictim) = false, want true")
	}
	if im.NoInline(plain) {
		t.Errorf("NoInline(declName) = true, want false")
	}
	if im.NoInline(marked + 1) {
		t.Errorf("NoInline(inside noinlineVictim) = true, want false")
	}
	if im.NoInline(reflect.ValueOf(func() {}).Pointer()) {
		t.Errorf("NoInline(a function literal) = true, want false")
	}

	// A binary built before its source was last written.
	file, _ := im.File(marked)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !im.noInline(marked, st.ModTime()) {
		t.Errorf("noInline(noinlineVictim, built when its source was written) = false")
	}
	if im.noInline(marked, st.ModTime().Add(-time.Second)) {
		t.Errorf("NoInline trusted %s, newer than the binary", file)
	}
}

//go:noinline
func noinlineVictim() int { return 1 }

// TestSourceFileReadsWhatItNeeds: a first question reads the file up to
// its line; a second reads the rest and answers from the index; another
// file replaces it.
func TestSourceFileReadsWhatItNeeds(t *testing.T) {
	dir := t.TempDir()
	var src []byte
	for i := range 20000 {
		src = append(src, fmt.Sprintf("// line %d\n", i+1)...)
	}
	src = append(src, "//go:noinline\nfunc Far() {}\n"...)
	file, other := dir+"/a.go", dir+"/b.go"
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("package p\n\n//go:noinline\nfunc Near() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	built := time.Now().Add(time.Hour)
	var im Image
	ask := func(file string, line int, d decl) bool {
		c, ok := im.sourceFile(file, built, line)
		if !ok {
			t.Fatalf("sourceFile(%s) failed", file)
		}
		start, ok := c.line(line)
		return ok && noinlineAt(c.src, start, d)
	}
	if ask(file, 3, decl{name: "Far"}) || len(im.src.src) >= len(src) {
		t.Errorf("a question about line 3 read %d of %d bytes", len(im.src.src), len(src))
	}
	if !ask(file, 20002, decl{name: "Far"}) {
		t.Errorf("line 20002 (asked second, from the index): no directive found")
	}
	if len(im.src.src) != len(src) || len(im.src.lines) != 20003 {
		t.Errorf("after a second question: %d of %d bytes, %d lines indexed", len(im.src.src), len(src), len(im.src.lines))
	}
	if !ask(other, 4, decl{name: "Near"}) || im.src.path != other || len(im.src.lines) != 0 {
		t.Errorf("another file: path %s, %d lines indexed", im.src.path, len(im.src.lines))
	}
	if _, ok := im.sourceFile(file, time.Now().Add(-time.Hour), 1); ok {
		t.Errorf("a file newer than the binary was read")
	}
}

// TestRemappedBeforeRemembers: asked about line starts in any order,
// remappedBefore answers what remapped does over the text before each,
// with a directive early, late or nowhere in the file.
func TestRemappedBeforeRemembers(t *testing.T) {
	for _, at := range []int{-1, 3, 150, 399} {
		var src []byte
		var starts []int
		for i := range 400 {
			starts = append(starts, len(src))
			switch {
			case i == at:
				src = append(src, "//line other.go:1\n"...)
			case i%3 == 0:
				src = append(src, "//go:noinline\n"...)
			default:
				src = append(src, fmt.Sprintf("func f%d() {} // a/b\n", i)...)
			}
		}
		c := &sourceText{src: src}
		rng := rand.New(rand.NewPCG(uint64(at+2), 7))
		for range 2000 {
			start := starts[rng.IntN(len(starts))]
			if got, want := c.remappedBefore(start), firstRemap(src[:start], 0) >= 0; got != want {
				t.Fatalf("directive at line %d, asked at +%d: %v, a whole scan says %v", at, start, got, want)
			}
		}
	}
	// What was scanned is not scanned again: a directive written into
	// text already found clean goes unseen.
	src := []byte("package p\n\nfunc a() {}\n\nfunc b() {}\n")
	c := &sourceText{src: src}
	last := bytes.LastIndex(src, []byte("func b"))
	if c.remappedBefore(last) {
		t.Fatal("clean text found remapped")
	}
	copy(src, "//line x.go:1\n")
	if c.remappedBefore(last) {
		t.Fatal("the text before a line was scanned again")
	}
}

// TestFirstReadFollowsTheSource: a first read reaches the line asked about
// at the bytes per line read so far (32 at first), a kilobyte more, in
// pages; where the estimate falls short (long lines), the reads go on to
// the line.
func TestFirstReadFollowsTheSource(t *testing.T) {
	var im Image
	if got := im.firstRead(403); got != 16384 {
		t.Errorf("no source read yet, line 403: %d bytes, want 16384", got)
	}
	im.srcBytes, im.srcLines = 16800, 1000
	if got := im.firstRead(403); got != 8192 {
		t.Errorf("17 bytes a line, line 403: %d bytes, want 8192", got)
	}
	dir := t.TempDir()
	var src []byte
	for i := range 500 {
		src = append(src, fmt.Sprintf("// %d %s\n", i, strings.Repeat("x", 200))...)
	}
	src = append(src, "//go:noinline\nfunc Long() {}\n"...)
	file := dir + "/long.go"
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	c, ok := im.sourceFile(file, time.Now().Add(time.Hour), 502)
	if !ok {
		t.Fatal("sourceFile failed")
	}
	start, ok := c.line(502)
	if !ok || !noinlineAt(c.src, start, decl{name: "Long"}) {
		t.Fatalf("line 502 past a short first read: no directive found (%d of %d bytes read)", len(c.src), len(src))
	}
	if im.srcLines < 502 || im.srcBytes < int64(start) {
		t.Errorf("read %d bytes, %d lines counted", im.srcBytes, im.srcLines)
	}
}
