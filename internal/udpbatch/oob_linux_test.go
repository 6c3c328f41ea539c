package udpbatch

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestQueueControlMessage sends one buffer with a UDP_SEGMENT control
// message, which the kernel must split into datagrams of the size it
// names: the control message reached sendmmsg with its datagram.
func TestQueueControlMessage(t *testing.T) {
	each(t, func(t *testing.T, newConn newConn) {
		srv := listen(t, "127.0.0.1:0")
		pc := dial(t, localAddr(srv))
		var serr error
		rc, _ := pc.SyscallConn()
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 0) })
		if serr != nil {
			t.Skipf("no UDP GSO: %v", serr)
		}
		oob := make([]byte, unix.CmsgSpace(2))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], 4)

		c := newConn(t, pc, makeBufs(1, 64), 2)
		c.Queue([]byte("aaaabbbbcc"), oob)
		c.Queue([]byte("whole"), nil) // no control message: one datagram
		if n, err := c.Flush(); n != 2 || err != nil {
			t.Fatalf("Flush = %d, %v; want 2, nil", n, err)
		}
		s := newConn(t, srv, makeBufs(4, 64), 1)
		pkts, _ := serve(t, s, 4, nil)
		if got := string(pkts[0]) + " " + string(pkts[1]) + " " + string(pkts[2]) + " " + string(pkts[3]); got != "aaaa bbbb cc whole" {
			t.Errorf("server got %q, want aaaa bbbb cc whole", got)
		}
	})
}
