package loadgen

import (
	"context"
	"syscall"

	"golang.org/x/sys/unix"
)

// dialControl lets the kernel choose a connection's local port at connect
// rather than at bind (IP_BIND_ADDRESS_NO_PORT): a bind to port 0 must find
// a port free for every destination, which gets slow with thousands of
// connections from one address, while connect only needs one free for its
// own. Best effort: an error leaves the ordinary bind.
func dialControl(_ context.Context, _, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
}

// fileLimit returns the process's soft limit on open files.
func fileLimit() (uint64, bool) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}
