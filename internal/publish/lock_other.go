//go:build !unix

package publish

import "os"

// lockFile does nothing here: run one publisher per data directory.
func lockFile(*os.File) error { return nil }
