package sqlitedb

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The commit record's locks are open-file-description locks on two bytes
// past its end: they belong to one open file, not to the process, so two
// Registries in one process exclude each other as two processes do, and
// closing the file releases them.
const (
	inUseByte  = 1024 // read-locked by every open database; write-locked by Recover
	updateByte = 1025 // write-locked while a record is being rewritten
)

// errInUse: another open file holds a lock that excludes the one asked for.
var errInUse = errors.New("in use by another process")

func ofdLock(f *os.File, typ int16, at int64, wait bool) error {
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: at, Len: 1}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			return errInUse
		}
		return fmt.Errorf("fcntl lock: %w", err)
	}
}

// lockShared marks the database as open; it fails with errInUse while
// Recover works on it.
func lockShared(f *os.File) error { return ofdLock(f, unix.F_RDLCK, inUseByte, false) }

// lockExclusive fails with errInUse while any other process (or Mark) has
// the database open through this package.
func lockExclusive(f *os.File) error { return ofdLock(f, unix.F_WRLCK, inUseByte, false) }

func lockUpdate(f *os.File) error { return ofdLock(f, unix.F_WRLCK, updateByte, true) }

func unlockUpdate(f *os.File) { _ = ofdLock(f, unix.F_UNLCK, updateByte, false) }

// syncData flushes the record's bytes; its size never changes, so the
// file's metadata need not be.
func syncData(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func owner(path string) (uid, gid int, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
