package bench

import (
	"flag"
	"slices"
)

// reverse makes the benchmarks run their variants in the reverse order, so
// that the run script can alternate the order from one round to the next
// and no variant always runs first.
var reverse = flag.Bool("reverse", false, "run each benchmark's variants in reverse order")

// ordered returns xs, reversed when -reverse is set.
func ordered[T any](xs []T) []T {
	if !*reverse {
		return xs
	}
	ys := slices.Clone(xs)
	slices.Reverse(ys)
	return ys
}
