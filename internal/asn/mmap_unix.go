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
// mapped is false when the file was read into memory instead.
func mapFile[T any](f *os.File, size int64, owner *T) (b []byte, mapped bool, err error) {
	if int64(int(size)) != size {
		return nil, false, fmt.Errorf("%d bytes is too large to map", size)
	}
	b, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		b, err = readFile(f, size)
		return b, false, err
	}
	runtime.AddCleanup(owner, func(b []byte) { _ = unix.Munmap(b) }, b)
	return b, true, nil
}

// dropResident takes the pages of a mapping made by mapFile out of the
// process's resident set once opening has read them all (checksum,
// flattening): lookups then touch only the few they need, faulted back
// from the page cache. Without it, the 55 MB location database counted in
// full against the service's memory limit.
func dropResident(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
