//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package udptracker

import (
	"syscall"

	"golang.org/x/sys/unix"
)

const haveReusePort = true

// reusePort is a net.ListenConfig.Control that sets SO_REUSEPORT, so that
// every worker can bind its own socket to the same address.
func reusePort(network, address string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); cerr != nil {
		return cerr
	}
	return err
}
