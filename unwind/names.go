package unwind

import (
	"slices"
	"strings"
)

// FuncNames returns the names of the functions whose names begin with
// prefix, sorted. It is meant for the questions a name alone cannot
// answer (is this pkg.X.func1 a closure of function X or a method of type
// X?); the first call sorts the names of every function, once per image,
// so that a scan asking for each function costs a binary search each.
func (im *Image) FuncNames(prefix string) []string {
	im.namesOnce.Do(func() {
		for _, f := range im.Funcs() {
			im.names = append(im.names, f.Name)
		}
		slices.Sort(im.names)
	})
	i, _ := slices.BinarySearch(im.names, prefix)
	var out []string
	for _, n := range im.names[i:] {
		if !strings.HasPrefix(n, prefix) {
			break
		}
		out = append(out, n)
	}
	return out
}

// FuncNamed returns the function of that exact name, scanning every
// function.
func (im *Image) FuncNamed(name string) (Func, bool) {
	for _, f := range im.Funcs() {
		if f.Name == name {
			return f, true
		}
	}
	return Func{}, false
}
