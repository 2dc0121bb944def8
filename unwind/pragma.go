package unwind

import (
	"bytes"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"
)

// fieldStartLine is _func.startLine: the line of the func keyword.
const fieldStartLine = 9

// maxSource bounds the source file NoInline reads.
const maxSource = 8 << 20

// NoInline reports whether the source of the Go function entered at pc
// marks it //go:noinline, which the compiler always honours. It reads the
// file and line of the declaration that the image's own table records,
// and trusts them only when the file is no newer than the image, holds no
// //line directive or build constraint before that line, and that line
// still declares a function of the name the table gives; the directive
// must be in the comment lines just above it. Anything else (no source,
// -trimpath, a function literal, a moved declaration) is false: no proof.
func (im *Image) NoInline(pc uintptr) bool {
	im.builtOnce.Do(func() {
		if st, err := os.Stat(im.Path); err == nil {
			im.built = st.ModTime()
		}
	})
	return im.noInline(pc, im.built)
}

// noInline is NoInline for an image whose file was written at built.
func (im *Image) noInline(pc uintptr, built time.Time) bool {
	i := im.goIndex(pc)
	if built.IsZero() || i < 0 || uint64(pc-im.Bias) != im.pcln.entry(i) {
		return false
	}
	file, ok := im.pcln.file(i)
	if !ok || !strings.HasPrefix(file, "/") || !strings.HasSuffix(file, ".go") || ignoredName(path.Base(file)) {
		return false
	}
	f := im.pcln.fn(i)
	line := int(int32(im.pcln.u32(f, fieldStartLine)))
	d := declName(im.pcln.name(f))
	if line <= 0 || d.name == "" {
		return false
	}
	im.srcMu.Lock()
	defer im.srcMu.Unlock()
	c, ok := im.sourceFile(file, built, line)
	if !ok {
		return false
	}
	start, ok := c.line(line)
	return ok && !c.remappedBefore(start) && noinlineAt(c.src, start, d)
}

// ignoredName reports whether the go command leaves a file of this name
// out of a linux/amd64 build: a leading _ or ., or another system's or
// architecture's suffix. A //line directive may point at such a file.
func ignoredName(base string) bool {
	if strings.HasPrefix(base, "_") || strings.HasPrefix(base, ".") {
		return true
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(base, ".go"), "_test"), "_")
	for _, p := range parts[1:] {
		if p != runtime.GOOS && p != runtime.GOARCH && slices.Contains(knownOSArch, p) {
			return true
		}
	}
	return false
}

// knownOSArch are the GOOS and GOARCH values a file name's suffix may name
// (go/build's lists).
var knownOSArch = strings.Fields(`aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd
	openbsd plan9 solaris wasip1 windows zos 386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips
	mipsle mips64 mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 s390x sparc sparc64 wasm`)

// firstRemap returns the offset in before[from:] (from a line's start) of
// the first //line directive, which makes the positions the binary records name
// other text, or a build constraint: a file excluded from the build (a
// template a //line directive points at) must not speak for the code.
// The compiler reads //line at the start of a line and /*line anywhere
// (here even in a string, which only costs the proof); the go command
// reads a constraint after spaces, tabs or a byte order mark, and +build
// with or without spaces after the slashes. A // comment is taken as
// either wherever only those stand before it on its line. One pass visits
// each slash: a search per directive was the larger part of a later
// first Set. -1: none.
func firstRemap(before []byte, from int) int {
	for i := from; ; i++ {
		j := bytes.IndexByte(before[i:], '/')
		if j < 0 {
			return -1
		}
		i += j
		rest := before[i:]
		if len(rest) < 3 {
			return -1
		}
		switch rest[1] {
		case '*':
			if bytes.HasPrefix(rest, []byte("/*line ")) {
				return i
			}
			continue
		case '/':
		default:
			continue
		}
		// A comment: the directive first, cheaper than looking back for
		// the line's start (most comments are neither).
		text := rest[2:]
		switch {
		case directive(text) && lineOpens(before[:i]):
			return i
		case bytes.HasPrefix(text, []byte("*line ")):
			// The second slash opens /*line when the first ended a block
			// comment (*//*line). In a line comment it is text, and taking
			// it only costs the proof.
			return i + 1
		}
		i++ // past the second slash
	}
}

// directive reports whether a comment's text (after //, not empty) is one
// firstRemap looks for.
func directive(text []byte) bool {
	switch text[0] {
	case 'l':
		return bytes.HasPrefix(text, []byte("line "))
	case 'g':
		return bytes.HasPrefix(text, []byte("go:build"))
	case '+', ' ', '\t':
		i := 0
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
		return bytes.HasPrefix(text[i:], []byte("+build"))
	}
	return false
}

// lineOpens reports whether only spaces, tabs and byte order marks stand
// between the last newline of before and its end.
func lineOpens(before []byte) bool {
	l := before[bytes.LastIndexByte(before, '\n')+1:]
	for len(l) > 0 {
		switch {
		case l[len(l)-1] == ' ' || l[len(l)-1] == '\t':
			l = l[:len(l)-1]
		case bytes.HasSuffix(l, []byte("\ufeff")):
			l = l[:len(l)-3]
		default:
			return false
		}
	}
	return true
}

// sourceText is the last source file NoInline read. Its buffer is reused
// for the next file. A first question reads the file only up to the line
// asked about; a second one about the same file reads the rest and builds a
// line index: NoInline runs on every Set until DWARF is read, a batch's
// functions tend to share files, and a one-off question is answered faster
// by counting.
type sourceText struct {
	path  string
	size  int64
	mod   time.Time
	src   []byte  // the file's first bytes, all of it when complete
	nl    int     // newlines in src
	lines []int32 // where each line starts; empty until asked twice
	asked int
	// remapAt is the offset of the first //line directive or build
	// constraint (firstRemap) when remapFound, and src[:scanned] holds none
	// otherwise: a batch asks about thousands of functions of one file,
	// and scanning its text again for each made staging quadratic.
	remapFound       bool
	remapAt, scanned int
}

// remappedBefore reports whether c.src[:start] holds a directive
// firstRemap looks for, scanning each byte once
// whatever order the questions come in. start is a line's start.
func (c *sourceText) remappedBefore(start int) bool {
	switch {
	case c.remapFound:
		return c.remapAt < start
	case start <= c.scanned:
		return false
	}
	if i := firstRemap(c.src[:start], c.scanned); i >= 0 {
		c.remapFound, c.remapAt = true, i
		return true
	}
	c.scanned = start
	return false
}

// sourceChunk is how much of a source file is read at a time.
const sourceChunk = 16 << 10

// sourceFile reads file into im.src, far enough to hold line whole, if it
// is a regular Go source file no newer than built. im.srcMu is held.
func (im *Image) sourceFile(file string, built time.Time, line int) (*sourceText, bool) {
	f, err := statSrc(file)
	if err != nil || !f.reg || f.size > maxSource || f.mod.After(built) {
		return nil, false
	}
	defer f.close()
	c := &im.src
	if c.path == file && c.size == f.size && c.mod.Equal(f.mod) {
		c.asked++
	} else {
		*c = sourceText{src: c.src[:0], lines: c.lines[:0], path: file, size: f.size, mod: f.mod, asked: 1}
	}
	want := line
	if c.asked > 1 {
		want = int(c.size) + 1 // all of it, for the index
	}
	for int64(len(c.src)) < c.size && c.nl < want {
		if err := f.open(); err != nil {
			c.path = ""
			return nil, false
		}
		n := sourceChunk
		if len(c.src) == 0 && c.asked == 1 {
			n = im.firstRead(line)
		}
		n = int(min(int64(n), c.size-int64(len(c.src))))
		at := len(c.src)
		c.src = slices.Grow(c.src, n)[:at+n]
		if err := f.readAt(c.src[at:], int64(at)); err != nil {
			c.path = ""
			return nil, false
		}
		nl := bytes.Count(c.src[at:], []byte{'\n'})
		c.nl += nl
		im.srcBytes, im.srcLines = im.srcBytes+int64(n), im.srcLines+int64(nl)
	}
	return c, true
}

// firstRead is how much of a file to read first for a question about line:
// as far as the line lies at the bytes per line of the source read so far
// (32 until then), and a kilobyte more, in whole pages. Copying the page
// cache's cold bytes is most of a read's cost, and a read past the line is
// wasted. im.srcMu is held.
func (im *Image) firstRead(line int) int {
	per := int64(32)
	if im.srcLines >= 64 {
		per = (im.srcBytes + im.srcLines - 1) / im.srcLines
	}
	return int(min(alignPage(int64(line)*per+1024), maxSource))
}

// alignPage rounds n up to whole 4 KiB pages.
func alignPage(n int64) int64 { return (n + 4095) &^ 4095 }

// line returns the offset in src where line (1-based) starts.
func (c *sourceText) line(line int) (int, bool) {
	if c.asked < 2 {
		return lineStart(c.src, line)
	}
	if len(c.lines) == 0 {
		c.lines = append(c.lines, 0)
		for off := 0; ; {
			i := bytes.IndexByte(c.src[off:], '\n')
			if i < 0 {
				break
			}
			off += i + 1
			c.lines = append(c.lines, int32(off))
		}
	}
	if line < 1 || line > len(c.lines) {
		return 0, false
	}
	return int(c.lines[line-1]), true
}

// lineStart returns the offset of line (1-based) in src, counting newlines
// a block at a time (bytes.Count is vectorized; a search per line is not).
func lineStart(src []byte, line int) (int, bool) {
	const block = 4096
	if line < 1 {
		return 0, false
	}
	start, n := 0, line-1
	for n > 0 {
		end := min(start+block, len(src))
		if c := bytes.Count(src[start:end], []byte{'\n'}); c < n && end < len(src) {
			start, n = end, n-c
			continue
		}
		for ; n > 0; n-- {
			i := bytes.IndexByte(src[start:], '\n')
			if i < 0 {
				return 0, false
			}
			start += i + 1
		}
	}
	return start, true
}

// decl is what a Go function's declaration names: the function, and for a
// method the receiver's type.
type decl struct{ recv, name string }

// declName is the declaration of a Go function: f for pkg.f and
// pkg.f[...], (T, m) for pkg.(*T).m and pkg.T.m. Its name is "" for
// function literals (pkg.f.func1) and generated names, which carry no
// directive of their own.
func declName(sym string) decl {
	if i := strings.IndexByte(sym, '['); i >= 0 {
		// Drop instantiation arguments, which may hold dots and slashes.
		j := strings.LastIndexByte(sym, ']')
		if j < i {
			return decl{}
		}
		sym = sym[:i] + sym[j+1:]
	}
	rest := sym[strings.LastIndexByte(sym, '/')+1:]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return decl{}
	}
	parts := strings.Split(rest[dot+1:], ".")
	switch {
	case len(parts) == 1:
		return decl{name: parts[0]}
	case len(parts) == 2 && !LiteralName(parts[1]):
		return decl{recv: strings.Trim(parts[0], "(*)"), name: parts[1]} // (*T).m or T.m
	}
	return decl{}
}

// LiteralName reports whether an element of a Go function's name is one
// the compiler gives a function literal or a wrapper it generates (func1,
// gowrap2, deferwrap1, a number), never a method's.
func LiteralName(s string) bool {
	for _, p := range []string{"func", "gowrap", "deferwrap", ""} {
		if rest, ok := strings.CutPrefix(s, p); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// noinlineAt reports whether the line of src starting at start declares d
// and the comment lines right above it hold //go:noinline as the compiler
// reads it: at the start of a line, followed by nothing or a space. The
// declaration line is code (the binary's table says a function starts
// there), so a block comment or raw string spanning the lines above would
// end on one of them: a line holding */ or a backquote stops the search.
func noinlineAt(src []byte, start int, d decl) bool {
	l, _, _ := bytes.Cut(src[start:], []byte("\n"))
	if !declares(string(l), d) {
		return false
	}
	for end := start - 1; end > 0; {
		begin := bytes.LastIndexByte(src[:end], '\n') + 1
		l := src[begin:end]
		if !bytes.HasPrefix(l, []byte("//")) || bytes.Contains(l, []byte("*/")) || bytes.ContainsRune(l, '`') {
			return false
		}
		if rest, ok := bytes.CutPrefix(l, []byte("//go:noinline")); ok && (len(rest) == 0 || rest[0] == ' ') {
			return true
		}
		end = begin - 1
	}
	return false
}

// declares reports whether a source line is the declaration of d: func,
// then for a method a receiver of d.recv's type, then d.name and its
// parameters or type parameters.
func declares(l string, d decl) bool {
	rest, ok := strings.CutPrefix(l, "func ")
	if !ok || d.name == "" {
		return false
	}
	rest = strings.TrimLeft(rest, " \t")
	recv := ""
	if strings.HasPrefix(rest, "(") {
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return false
		}
		recv, rest = rest[1:end], strings.TrimLeft(rest[end+1:], " \t")
		if i := strings.IndexByte(recv, '['); i >= 0 {
			recv = recv[:i] // type parameters: (c *Counter[T])
		}
		fields := strings.Fields(recv)
		if len(fields) == 0 {
			return false
		}
		recv = strings.TrimLeft(fields[len(fields)-1], "*")
	}
	name, ok := strings.CutPrefix(rest, d.name)
	return ok && recv == d.recv && name != "" && (name[0] == '(' || name[0] == '[')
}
