//go:build linux

package loadgen

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoOOBLen is the room a UDP_SEGMENT control message needs.
var gsoOOBLen = unix.CmsgSpace(2)

// gsoSupported reports whether c can send UDP GSO super-packets (Linux
// 4.18 and later): one send of several equal datagrams back to back, which
// the kernel splits. On loopback this saves the sender most of the
// per-datagram cost of the output path, leaving more of its core to the
// work that is measured.
func gsoSupported(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 0)
	}); err != nil {
		return false
	}
	return serr == nil
}

// putGSO writes into b, which has gsoOOBLen bytes, a control message that
// splits a send into datagrams of size bytes, and returns it.
func putGSO(b []byte, size int) []byte {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b[:unix.CmsgSpace(2)]
}
