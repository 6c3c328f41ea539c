//go:build unix

package asn

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// mapFile maps f read-only. The pages stay in the page cache, shared with
// every other reader of the file, rather than counting as live Go heap
// (a 55 MB location database would otherwise double the collector's
// goal). The mapping is released when owner becomes unreachable, so no
// lookup can ever touch unmapped memory, however Close and Lookup race.
func mapFile[T any](f *os.File, size int64, owner *T) ([]byte, error) {
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%d bytes is too large to map", size)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return readFile(f, size)
	}
	runtime.AddCleanup(owner, func(b []byte) { _ = unix.Munmap(b) }, b)
	return b, nil
}
