//go:build unix

package limit

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newSets returns n zeroed sets outside the Go heap: an anonymous mapping,
// given back when owner becomes unreachable. The table is tens of MiB of
// plain numbers that never point into the heap; kept in the heap, it would
// count as live data and double the collector's goal, so the swarms'
// garbage would pile up to twice the table's size before any collection.
// Its pages become resident only as sources touch them.
// setsOffHeap says whether newSets maps the table outside the Go heap.
const setsOffHeap = true

func newSets(n int, owner *Limiter) []set {
	b, err := unix.Mmap(-1, 0, n*setBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return make([]set, n) // no mapping to be had: the heap will do
	}
	sets := unsafe.Slice((*set)(unsafe.Pointer(&b[0])), n)
	runtime.AddCleanup(owner, func(b []byte) { _ = unix.Munmap(b) }, b)
	return sets
}
