//go:build unix

package memswarm

import "golang.org/x/sys/unix"

// mapRegion reserves n bytes of address space for the arena. Nothing is
// committed: a page costs memory only once written.
func mapRegion(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
}

// releasePages gives the pages of b back to the system; they read as zero
// when next touched.
func releasePages(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }

func unmapRegion(b []byte) { _ = unix.Munmap(b) }
