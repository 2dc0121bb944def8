// Package pricing is the example service's business logic, with a bug
// that a hot fix repairs.
package pricing

// Quote returns the price in cents of qty items at unit cents each. Orders
// of 10 items or more get 10% off.
//
// The bug: the discount starts at 11 items, not 10.
//
//go:noinline
func Quote(qty, unit int) int {
	total := qty * unit
	if qty > 10 {
		total -= total / 10
	}
	return total
}
