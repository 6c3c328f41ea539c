package webseed

import (
	"os"
	"syscall"
)

// inodeCtime returns the file's inode number and the time of its last
// status change in Unix nanoseconds, which a rewrite in place with its
// old modification time restored still moves.
func inodeCtime(st os.FileInfo) (uint64, int64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino, sys.Ctim.Nano()
	}
	return 0, 0
}
