//go:build !unix

package metainfo

import "os"

// mapFile never maps here: the data is read with pread.
func mapFile(*os.File, int64) []byte { return nil }

func unmap([]byte) {}
