//go:build race

package registry_test

// raceBuild: the race detector instruments every function, so prologue
// shapes differ from a normal build; tests that expect a given shape say so.
const raceBuild = true
