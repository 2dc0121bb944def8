// Command testfix is the plugin the hotfix tests load. HOTFIX_TEST_MODE
// selects what Patches does: "" stages a correct fix, "protected" stages
// one of Switchboard's own functions (refused by Stage), "cycle" stages a
// cycle (refused by Commit).
package main

import (
	"os"
	"strings"

	"github.com/switchboard-go/switchboard/hotfix/internal/victim"
	"github.com/switchboard-go/switchboard/registry"
)

// Patches stages the fix.
func Patches(b *registry.Batch) error {
	switch os.Getenv("HOTFIX_TEST_MODE") {
	case "protected":
		return registry.Stage(b, registry.List, registry.List)
	case "cycle":
		if err := registry.Stage(b, victim.Greeting, func(n string) string { return strings.ToUpper(n) }); err != nil {
			return err
		}
		if err := registry.Stage(b, victim.Twice, victim.Thrice); err != nil {
			return err
		}
		return registry.Stage(b, victim.Thrice, victim.Twice)
	}
	if err := registry.Stage(b, victim.Greeting, func(n string) string { return "hello, " + strings.ToUpper(n) + "!" }); err != nil {
		return err
	}
	return registry.Stage(b, victim.Twice, func(x int) int { return x + x + 1 })
}

func main() {}
