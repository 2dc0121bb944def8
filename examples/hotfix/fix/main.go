// Command fix is a hot fix for the example service, built as a plugin:
//
//	go build -buildmode=plugin -o fixes/bulk-discount.so ./examples/hotfix/fix
//
// The service loads it with hotfix.Load, which calls Patches.
package main

import (
	"github.com/switchboard-go/switchboard/examples/hotfix/pricing"
	"github.com/switchboard-go/switchboard/registry"
)

// quote is pricing.Quote with the discount from 10 items on.
func quote(qty, unit int) int {
	total := qty * unit
	if qty >= 10 {
		total -= total / 10
	}
	return total
}

// Patches stages the fix; hotfix.Load commits it.
func Patches(b *registry.Batch) error {
	return registry.Stage(b, pricing.Quote, quote)
}

// main is never run: the package is built as a plugin.
func main() {}
