//go:build unix

package limit

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setsOffHeap says whether newSets maps the table outside the Go heap.
const setsOffHeap = true

// newSets returns n zeroed sets outside the Go heap: an anonymous mapping,
// given back when owner becomes unreachable. The table is tens of MiB of
// plain numbers that never point into the heap; kept in the heap, it would
// count as live data and double the collector's goal, so the swarms'
// garbage would pile up to twice the table's size before any collection.
// Its pages become resident only as sources touch them.
//
// A mapping the system refuses is an error, never a fallback to the heap:
// there a table too large for the machine would be a fatal runtime error
// ("out of memory", with a stack dump), not a message.
func newSets(n int, owner *Limiter) ([]set, error) {
	b, err := unix.Mmap(-1, 0, n*setBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, err
	}
	sets := unsafe.Slice((*set)(unsafe.Pointer(&b[0])), n)
	runtime.AddCleanup(owner, func(b []byte) { _ = unix.Munmap(b) }, b)
	return sets, nil
}
