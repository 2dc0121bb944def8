package dispatch

import (
	"fmt"
	"unsafe"
)

// Simulated is an address space that exists only on paper: the busy
// ranges of a binary's layout (its load segments) plus the pages reserved
// so far. The scanner plans every function of a binary against it, with
// the same planner the live process uses.
type Simulated struct {
	Taken []Range
}

// Busy returns the taken ranges.
func (s *Simulated) Busy() ([]Range, error) { return s.Taken, nil }

// Reserve marks size bytes taken. It has no memory.
func (s *Simulated) Reserve(addr uintptr, size int) (unsafe.Pointer, error) {
	for _, r := range s.Taken {
		if addr < r.End && addr+uintptr(size) > r.Start {
			return nil, fmt.Errorf("page %#x overlaps %#x-%#x", addr, r.Start, r.End)
		}
	}
	s.Taken = append(s.Taken, Range{addr, addr + uintptr(size)})
	return nil, nil
}
