//go:build !unix

package limit

const setsOffHeap = false

func newSets(n int, _ *Limiter) []set { return make([]set, n) }
