package registry

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/switchboard-go/switchboard"
)

// A goroutine tree is identified by the profiler-label word of its
// goroutines' g: runtime/pprof.SetGoroutineLabels stores a pointer to the
// label set there, and every goroutine started afterwards copies it. The
// word's offset is the runtime's business, so it is found and checked on
// the running toolchain, once, before the first goroutine-scoped patch.

// gScan is how many bytes of g the probe reads: less than the size of g on
// every supported toolchain (456 bytes in Go 1.26 and 1.27, from the
// runtime's DWARF), so the probe never reads past the object.
const gScan = 448

// probeKey labels the probe's own label sets.
const probeKey = "switchboard-probe"

// treeKey is the label every goroutine tree carries; its value names the tree.
const treeKey = "switchboard"

var labelProbe struct {
	once sync.Once
	off  uintptr // offset of the label word in g
	// layout reports that a label word was read back as the label list
	// that was set, so a goroutine's existing labels can be kept.
	layout bool
	err    error // why goroutine trees are unsupported
}

// labelOffset returns the offset of the profiler-label word in g, probing
// it on first use. The error wraps ErrUnsupported.
func labelOffset() (uintptr, error) {
	labelProbe.once.Do(func() {
		labelProbe.off, labelProbe.layout, labelProbe.err = probeLabelWord()
		if labelProbe.err != nil {
			labelProbe.err = because(ErrUnsupported, "goroutine trees: %v", labelProbe.err)
		}
	})
	return labelProbe.off, labelProbe.err
}

// gWords is a snapshot of the first gScan bytes of a g.
type gWords [gScan / 8]uintptr

func snapshot(g unsafe.Pointer) (w gWords) {
	for i := range w {
		w[i] = atomic.LoadUintptr((*uintptr)(unsafe.Add(g, i*8)))
	}
	return w
}

// labelWordAt reads the word at off of the running goroutine's g.
func labelWordAt(off uintptr) uintptr { return uintptr(labelsOf(off)) }

// labelsOf reads the word at off of the running goroutine's g as the
// pointer it is.
func labelsOf(off uintptr) unsafe.Pointer {
	return atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(switchboard.CurrentG(), off)))
}

// probeLabelWord finds the label word on a goroutine of its own, so the
// caller's labels are untouched.
func probeLabelWord() (off uintptr, layout bool, err error) {
	type result struct {
		off    uintptr
		layout bool
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.off, r.layout, r.err = probeHere()
		done <- r
	}()
	r := <-done
	return r.off, r.layout, r.err
}

// probeHere sets distinct label sets on the running goroutine and looks
// for the one word of g that follows them: zero without labels, a distinct
// non-zero value per set, the same value when a set comes back. Then it
// checks inheritance: a goroutine started afterwards holds the same word,
// one started before does not, and a child changing its labels leaves its
// parent's word alone.
func probeHere() (uintptr, bool, error) {
	g := switchboard.CurrentG()
	none := context.Background()
	c1 := pprof.WithLabels(none, pprof.Labels(probeKey+"-a", "1", probeKey+"-b", "2"))
	c2 := pprof.WithLabels(none, pprof.Labels(probeKey, "2"))
	defer pprof.SetGoroutineLabels(none)

	pprof.SetGoroutineLabels(none)
	w0 := snapshot(g)
	pprof.SetGoroutineLabels(c1)
	w1 := snapshot(g)
	pprof.SetGoroutineLabels(c2)
	w2 := snapshot(g)
	pprof.SetGoroutineLabels(none)
	w3 := snapshot(g)
	pprof.SetGoroutineLabels(c1)
	w4 := snapshot(g)
	var found []uintptr
	for i := range w0 {
		if w0[i] == 0 && w1[i] != 0 && w2[i] != 0 && w1[i] != w2[i] && w3[i] == 0 && w4[i] == w1[i] {
			found = append(found, uintptr(i*8))
		}
	}
	if len(found) != 1 {
		return 0, false, fmt.Errorf("%d words of the first %d bytes of g follow the goroutine's profiler labels, want exactly 1", len(found), gScan)
	}
	off := found[0]
	v1, v2 := w1[off/8], w2[off/8]

	// Labels are c1 now. A goroutine started under c2 waits until c1 is
	// back, then reports; one started under c1 reports, switches to c2
	// and reports again.
	pprof.SetGoroutineLabels(c2)
	release := make(chan struct{})
	before := make(chan uintptr, 1)
	go func() {
		<-release
		before <- labelWordAt(off)
	}()
	pprof.SetGoroutineLabels(c1)
	after := make(chan [2]uintptr, 1)
	go func() {
		w := labelWordAt(off)
		pprof.SetGoroutineLabels(c2)
		after <- [2]uintptr{w, labelWordAt(off)}
	}()
	a := <-after
	close(release)
	b := <-before
	switch {
	case a[0] != v1:
		return 0, false, fmt.Errorf("a goroutine started afterwards holds %#x at g+%d, not its parent's %#x", a[0], off, v1)
	case a[1] != v2:
		return 0, false, fmt.Errorf("a child's own labels give %#x at g+%d, want %#x", a[1], off, v2)
	case labelWordAt(off) != v1:
		return 0, false, fmt.Errorf("a child changing its labels changed its parent's word at g+%d", off)
	case b != v2:
		return 0, false, fmt.Errorf("a goroutine started before the labels changed holds %#x at g+%d, want its own %#x", b, off, v2)
	}
	p1 := labelsOf(off) // c1's set, kept alive by c1
	pprof.SetGoroutineLabels(c2)
	layout := labelsAt(p1, []string{probeKey + "-a", "1", probeKey + "-b", "2"}) && labelsAt(labelsOf(off), []string{probeKey, "2"})
	return off, layout, nil
}

// pprofLabel is runtime/pprof's label: two strings. The label word points
// to a struct whose first field is the sorted []pprofLabel. probeHere
// checks this against label sets it made before labelList is trusted.
type pprofLabel struct{ key, value string }

// labelsAt reports whether the label set at p reads back as kv (key,
// value, ...), checking the slice header before following it.
func labelsAt(p unsafe.Pointer, kv []string) bool {
	hdr := (*[3]uintptr)(p)
	if n := hdr[1]; n != uintptr(len(kv)/2) || hdr[2] < n || hdr[0] == 0 {
		return false
	}
	list := *(*[]pprofLabel)(p)
	for i, l := range list {
		if l.key != kv[2*i] || l.value != kv[2*i+1] {
			return false
		}
	}
	return true
}

// labelList returns the running goroutine's labels as key, value pairs.
// It needs the layout probeHere verified unless there are no labels.
func labelList(off uintptr) ([]string, error) {
	p := labelsOf(off)
	if p == nil {
		return nil, nil
	}
	if !labelProbe.layout {
		return nil, because(ErrUnsupported, "the goroutine has profiler labels and their layout on this toolchain is unknown, so a goroutine tree would drop them")
	}
	var kv []string
	for _, l := range *(*[]pprofLabel)(p) {
		kv = append(kv, l.key, l.value)
	}
	return kv, nil
}
