//go:build !unix

package limit

const setsOffHeap = false

// newSets returns n zeroed sets in the Go heap.
func newSets(n int, _ *Limiter) ([]set, error) { return make([]set, n), nil }
