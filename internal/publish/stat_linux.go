package publish

import (
	"os"
	"syscall"
)

// inodeCtime returns the file's inode number and the time of its last
// status change in Unix nanoseconds: a file replaced by another of the
// same size and modification time (mv, rsync -t), or rewritten with its
// old time put back, still shows as changed.
func inodeCtime(st os.FileInfo) (uint64, int64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino, sys.Ctim.Nano()
	}
	return 0, 0
}
