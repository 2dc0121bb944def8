//go:build linux && amd64

package dispatch

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// codePages maps n read-execute pages holding a known pattern, standing in
// for a binary's text.
func codePages(t *testing.T, n int) []byte {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, n*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	for i := range mem {
		mem[i] = byte(i*7 + 1)
	}
	if err := unix.Mprotect(mem, protRX); err != nil {
		t.Fatal(err)
	}
	return mem
}

// quadSwaps builds one swap per offset, New being Old with each byte
// complemented.
func quadSwaps(mem []byte, offs ...int) []QuadSwap {
	var out []QuadSwap
	for _, off := range offs {
		var w QuadSwap
		w.At = unsafe.Pointer(&mem[off])
		copy(w.Old[:], mem[off:])
		for i, b := range w.Old {
			w.New[i] = ^b
		}
		out = append(out, w)
	}
	return out
}

// TestSwapQuads: every swap or none, one RWX and one RX per page (counted
// at the mprotect calls), rolled back when a step fails on a later page.
func TestSwapQuads(t *testing.T) {
	cases := []struct {
		name string
		offs []int // quadwords written, over three pages
		// failAt makes the n-th mprotect call (1-based) fail; 0 = none.
		failAt     int
		staleOff   int // a quadword whose Old is wrong; -1 = none
		wantErr    error
		wantMprot  int // mprotect calls made
		wantChange bool
	}{
		{"one page", []int{0, 64, 4088}, 0, -1, nil, 2, true},
		{"three pages, unsorted", []int{2*pageSize + 8, 0, pageSize + 512, 32, 2*pageSize + 4000}, 0, -1, nil, 6, true},
		{"stale quadword: nothing written", []int{0, pageSize, 2 * pageSize}, 0, 1, ErrCodeChanged, 0, false},
		{"RWX of page 3 fails: pages 1, 2 rolled back", []int{0, 8, pageSize, 2 * pageSize}, 5, -1, unix.EACCES, 5 + 4, false},
		{"RX of page 2 fails: page 2 and page 1 rolled back", []int{0, pageSize, pageSize + 8, 2 * pageSize}, 4, -1, unix.EACCES, 4 + 4, false},
		{"RWX of page 1 fails", []int{0, pageSize}, 1, -1, unix.EACCES, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := codePages(t, 3)
			before := slices.Clone(mem)
			swaps := quadSwaps(mem, tc.offs...)
			if tc.staleOff >= 0 {
				swaps[tc.staleOff].Old[0]++
			}
			calls := 0
			mprotect = func(b []byte, prot int) error {
				calls++
				if calls == tc.failAt {
					return unix.EACCES
				}
				return unix.Mprotect(b, prot)
			}
			defer func() { mprotect = unix.Mprotect }()
			written, err := SwapQuads(swaps)
			t.Log(err)
			if written != tc.wantChange || (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("written %v, err %v; want %v, %v", written, err, tc.wantChange, tc.wantErr)
			}
			if calls != tc.wantMprot {
				t.Errorf("%d mprotect calls, want %d", calls, tc.wantMprot)
			}
			want := before
			if tc.wantChange {
				want = slices.Clone(before)
				for _, w := range swaps {
					off := int(uintptr(w.At) - uintptr(unsafe.Pointer(&mem[0])))
					copy(want[off:], w.New[:])
				}
			}
			if i := firstDiff(mem, want); i >= 0 {
				t.Fatalf("byte %#x is %#x, want %#x", i, mem[i], want[i])
			}
			// Every page is read-execute again: a write must fault. The
			// kernel says so in /proc/self/maps.
			if !allRX(t, mem) {
				t.Error("a page was left writable")
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// allRX reports whether /proc/self/maps shows mem as r-x throughout.
func allRX(t *testing.T, mem []byte) bool {
	t.Helper()
	lo := uintptr(unsafe.Pointer(&mem[0]))
	hi := lo + uintptr(len(mem))
	perms, err := mapPerms()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range perms {
		if p.Start < hi && p.End > lo && p.perms != "r-xp" {
			return false
		}
	}
	return true
}

func TestSwapQuadsRefusesBadInput(t *testing.T) {
	mem := codePages(t, 1)
	unaligned := quadSwaps(mem, 0)
	unaligned[0].At = unsafe.Pointer(&mem[4])
	twice := quadSwaps(mem, 8, 8)
	for _, s := range [][]QuadSwap{unaligned, twice} {
		if written, err := SwapQuads(s); written || err == nil {
			t.Errorf("%v: written %v, err %v", s, written, err)
		}
	}
	if written, err := SwapQuads(nil); !written || err != nil {
		t.Errorf("empty batch: %v %v", written, err)
	}
}

type mapping struct {
	Range
	perms string
}

func mapPerms() ([]mapping, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	var out []mapping
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad line %q", line)
		}
		out = append(out, mapping{Range{uintptr(a), uintptr(b)}, f[1]})
	}
	return out, nil
}

// TestWideSwaps: an octoword swap (an eviction past the entry's quadword)
// changes all 16 bytes with one CMPXCHG16B, alone or in a batch, refuses
// stale bytes in either half and misalignment, and undoes.
func TestWideSwaps(t *testing.T) {
	if !wideOK() {
		t.Skip("no CMPXCHG16B on this CPU")
	}
	mem := codePages(t, 1)
	before := slices.Clone(mem)
	wide := func(off int) QuadSwap {
		w := quadSwaps(mem, off)[0]
		w.Wide = true
		copy(w.OldHi[:], mem[off+8:])
		for i, b := range w.OldHi {
			w.NewHi[i] = ^b
		}
		return w
	}
	inverted := func(off, n int) bool {
		for i := off; i < off+n; i++ {
			if mem[i] != ^before[i] {
				return false
			}
		}
		return firstDiff(mem[:off], before[:off]) < 0 && firstDiff(mem[off+n:], before[off+n:]) < 0
	}

	// Alone, through swapOcta.
	w := wide(32)
	if written, err := swapOcta(w.At, [16]byte(append(w.Old[:], w.OldHi[:]...)), [16]byte(append(w.New[:], w.NewHi[:]...))); !written || err != nil {
		t.Fatalf("swapOcta: %v %v", written, err)
	}
	if !inverted(32, 16) {
		t.Fatal("swapOcta did not write exactly the 16 bytes")
	}
	if written, err := swapOcta(w.At, [16]byte(append(w.Old[:], w.OldHi[:]...)), [16]byte(append(w.New[:], w.NewHi[:]...))); !written || err != nil {
		t.Fatalf("swapOcta again (already new): %v %v", written, err)
	}
	if written, err := swapOcta(w.At, [16]byte(append(w.New[:], w.NewHi[:]...)), [16]byte(append(w.Old[:], w.OldHi[:]...))); !written || err != nil {
		t.Fatalf("swapOcta back: %v %v", written, err)
	}
	if firstDiff(mem, before) >= 0 {
		t.Fatal("swapOcta back did not restore")
	}
	stale := [16]byte(append(w.Old[:], w.OldHi[:]...))
	stale[12]++
	if written, err := swapOcta(w.At, stale, [16]byte(append(w.New[:], w.NewHi[:]...))); written || !errors.Is(err, ErrCodeChanged) || firstDiff(mem, before) >= 0 {
		t.Fatalf("stale high half: written %v, err %v", written, err)
	}
	if written, err := swapOcta(unsafe.Pointer(&mem[40]), stale, stale); written || err == nil {
		t.Fatalf("unaligned octoword: written %v, err %v", written, err)
	}

	// In a batch with a plain quadword.
	swaps := []QuadSwap{wide(64), quadSwaps(mem, 96)[0]}
	if written, err := SwapQuads(swaps); !written || err != nil {
		t.Fatalf("SwapQuads: %v %v", written, err)
	}
	for _, r := range [][2]int{{64, 16}, {96, 8}} {
		for i := r[0]; i < r[0]+r[1]; i++ {
			if mem[i] != ^before[i] {
				t.Fatalf("byte %d not written", i)
			}
		}
	}
	back := make([]QuadSwap, len(swaps))
	for i, w := range swaps {
		back[i] = QuadSwap{At: w.At, Old: w.New, New: w.Old, Wide: w.Wide, OldHi: w.NewHi, NewHi: w.OldHi}
	}
	if written, err := SwapQuads(back); !written || err != nil || firstDiff(mem, before) >= 0 {
		t.Fatalf("SwapQuads back: %v %v", written, err)
	}
	// A stale high half refuses the whole batch; overlap and misalignment
	// are refused.
	bad := []QuadSwap{wide(64), quadSwaps(mem, 96)[0]}
	bad[0].OldHi[3]++
	if written, err := SwapQuads(bad); written || !errors.Is(err, ErrCodeChanged) || firstDiff(mem, before) >= 0 {
		t.Fatalf("stale high half in a batch: written %v, err %v", written, err)
	}
	overlap := []QuadSwap{wide(64), quadSwaps(mem, 72)[0]}
	unaligned := []QuadSwap{wide(64)}
	unaligned[0].At = unsafe.Pointer(&mem[72])
	for _, s := range [][]QuadSwap{overlap, unaligned} {
		if written, err := SwapQuads(s); written || err == nil || firstDiff(mem, before) >= 0 {
			t.Errorf("%v: written %v, err %v", s, written, err)
		}
	}
	if !allRX(t, mem) {
		t.Error("a page was left writable")
	}
}
