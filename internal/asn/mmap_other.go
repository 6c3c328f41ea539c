//go:build !unix

package asn

import "os"

// mapFile reads f into memory where there is no mmap.
func mapFile[T any](f *os.File, size int64, _ *T) ([]byte, bool, error) {
	b, err := readFile(f, size)
	return b, false, err
}

// dropResident is never called without mmap.
func dropResident([]byte) {}
