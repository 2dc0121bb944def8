// Package unwind maps code addresses to functions: name, entry, code size
// and the padding after it. Go names come from the runtime
// (runtime.FuncForPC); sizes, padding, load segments and the set of
// functions the compiler inlined come from the ELF symbol table and DWARF
// of the binary (/proc/self/exe for this process); C and C++ names are
// demangled. Go code may also live in other modules of the process: a Go
// plugin, or the c-shared library that holds the runtime when a C program
// loaded it. ImageAt reads the module holding an address from its own
// file, at the bias /proc/self/maps gives, and checks it as SelfCheck
// checks the executable.
//
// It reads only what is asked, once: for this process the function table
// is read in place in memory and searched, the symbol table and the list of
// every function are built on first need, and the inlining facts come from
// one pass over .debug_info into a compact index (inlineindex.go), so that
// the first Set of a process stays cheap in a large binary.
//
// The Go function table's layout is private to the runtime: SelfCheck
// compares what this package reads with runtime.FuncForPC and the live
// text once, and its failure makes Switchboard refuse every patch
// (docs/design.md section 10).
//
// It reads binaries and the runtime's public API only. It must not write
// code, map memory or import the other Switchboard packages.
package unwind
