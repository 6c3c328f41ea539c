//go:build linux

package loadgen

import (
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgIO is batchIO with recvmmsg and sendmmsg on a connected socket. The
// receive headers point at the worker's buffers once and for all, and the
// functions handed to RawConn are bound once, so a batch costs one system
// call and no allocation. x/net's ReadBatch, by comparison, rebuilds every
// header and allocates two addresses per datagram.
type mmsgIO struct {
	rc   syscall.RawConn
	rhs  []mmsghdr
	riov []unix.Iovec
	shs  []mmsghdr
	siov []unix.Iovec

	// The call in flight: how many headers to send, and the result.
	sn     int
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool
	pollFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
}

func newBatchIO(c *net.UDPConn, recvBufs [][]byte, maxSend int) (batchIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgIO{
		rc:   rc,
		rhs:  make([]mmsghdr, len(recvBufs)),
		riov: make([]unix.Iovec, len(recvBufs)),
		shs:  make([]mmsghdr, maxSend),
		siov: make([]unix.Iovec, maxSend),
	}
	for i, b := range recvBufs {
		m.riov[i].Base = &b[0]
		m.riov[i].SetLen(len(b))
		m.rhs[i].hdr.Iov = &m.riov[i]
		m.rhs[i].hdr.SetIovlen(1)
	}
	for i := range m.shs {
		m.shs[i].hdr.Iov = &m.siov[i]
		m.shs[i].hdr.SetIovlen(1)
	}
	m.readFn = m.doRecv
	m.pollFn = m.doPoll
	m.sendFn = m.doSend
	return m, nil
}

func (m *mmsgIO) doRecv(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rhs[0])), uintptr(len(m.rhs)), 0, 0, 0)
	if e == unix.EAGAIN {
		return false // wait until readable, or the deadline
	}
	m.n, m.errno = int(r), e
	return true
}

// doPoll is doRecv that never waits: EAGAIN reads as no datagram.
func (m *mmsgIO) doPoll(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rhs[0])), uintptr(len(m.rhs)), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		r, e = 0, 0
	}
	m.n, m.errno = int(r), e
	return true
}

func (m *mmsgIO) doSend(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.shs[0])), uintptr(m.sn), 0, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	m.n, m.errno = int(r), e
	return true
}

func (m *mmsgIO) result(op string) (int, error) {
	switch {
	case m.errno == unix.EINTR:
		return 0, nil
	case m.errno != 0:
		return 0, os.NewSyscallError(op, m.errno)
	}
	return max(m.n, 0), nil
}

func (m *mmsgIO) recv(lens []int) (int, error) {
	m.n, m.errno = 0, 0
	if err := m.rc.Read(m.readFn); err != nil {
		return 0, err
	}
	n, err := m.result("recvmmsg")
	for i := range n {
		lens[i] = int(m.rhs[i].len)
	}
	return n, err
}

func (m *mmsgIO) poll(lens []int) (int, error) {
	m.n, m.errno = 0, 0
	if err := m.rc.Read(m.pollFn); err != nil {
		return 0, err
	}
	n, err := m.result("recvmmsg")
	for i := range n {
		lens[i] = int(m.rhs[i].len)
	}
	return n, err
}

func (m *mmsgIO) send(parts, oob [][]byte) (int, error) {
	for i, p := range parts {
		m.siov[i].Base = &p[0]
		m.siov[i].SetLen(len(p))
		h := &m.shs[i].hdr
		if len(oob[i]) > 0 {
			h.Control = &oob[i][0]
			h.SetControllen(len(oob[i]))
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
	}
	m.sn, m.n, m.errno = len(parts), 0, 0
	if err := m.rc.Write(m.sendFn); err != nil {
		return 0, err
	}
	return m.result("sendmmsg")
}
