package udptracker

import (
	"net"

	"golang.org/x/sys/unix"
)

// setBuffers sizes the socket's receive and send buffers to n bytes. It
// first tries SO_RCVBUFFORCE/SO_SNDBUFFORCE, which pass the system cap
// (net.core.rmem_max) when the process has CAP_NET_ADMIN, and otherwise
// falls back to the ordinary options, which the kernel silently caps. A
// deep receive queue is what keeps a burst of flood packets from pushing
// legitimate ones out before the worker reads them.
func setBuffers(pc *net.UDPConn, n int) error {
	rc, err := pc.SyscallConn()
	if err != nil {
		return err
	}
	var rcvErr, sndErr error
	if err := rc.Control(func(fd uintptr) {
		rcvErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		sndErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
	}); err != nil {
		return err
	}
	if rcvErr != nil {
		if err := pc.SetReadBuffer(n); err != nil {
			return err
		}
	}
	if sndErr != nil {
		return pc.SetWriteBuffer(n)
	}
	return nil
}
