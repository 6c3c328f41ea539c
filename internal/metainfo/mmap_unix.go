//go:build unix

package metainfo

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only, or returns nil if it cannot.
func mapFile(f *os.File, size int64) []byte {
	if int64(int(size)) != size {
		return nil
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return m
}

func unmap(m []byte) { _ = syscall.Munmap(m) }
