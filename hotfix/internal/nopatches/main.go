// Command nopatches is a plugin without a Patches function, for the
// hotfix tests.
package main

// Patch is not Patches.
func Patch() {}

func main() {}
