//go:build !unix

package asn

import "os"

// mapFile reads f into memory where there is no mmap.
func mapFile[T any](f *os.File, size int64, _ *T) ([]byte, error) { return readFile(f, size) }
