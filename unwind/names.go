package unwind

import "strings"

// FuncNames returns the names of the functions whose names begin with
// prefix. It scans every function: it is meant for the rare questions a
// name alone cannot answer (is this pkg.X.func1 a closure of function X or
// a method of type X?).
func (im *Image) FuncNames(prefix string) []string {
	var out []string
	for _, f := range im.Funcs() {
		if strings.HasPrefix(f.Name, prefix) {
			out = append(out, f.Name)
		}
	}
	return out
}

// FuncNamed returns the function of that exact name, scanning every
// function as FuncNames does.
func (im *Image) FuncNamed(name string) (Func, bool) {
	for _, f := range im.Funcs() {
		if f.Name == name {
			return f, true
		}
	}
	return Func{}, false
}
