package main

// asmAdd is written in assembly (asm_amd64.s): Go calls it through the
// compiler's ABI wrapper, so Set refuses it, and the scan must refuse its
// assembly body too.
func asmAdd(a, b int) int

func init() {
	tries = append(tries, func() { try("asmAdd", asmAdd, func(a, b int) int { return -1 }) })
}
