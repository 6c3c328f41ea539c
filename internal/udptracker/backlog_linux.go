package udptracker

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// haveBacklog says whether backlog can read a socket's receive queue.
const haveBacklog = true

// backlog reads how much of a socket's receive buffer is taken by
// datagrams not yet read (SO_MEMINFO: rmem_alloc against rcvbuf, both in
// the kernel's accounting, about 830 bytes for a short datagram).
// It allocates nothing after newBacklog and is not safe for concurrent
// use.
type backlog struct {
	rc    syscall.RawConn
	mi    [unix.SK_MEMINFO_VARS]uint32
	errno unix.Errno
	fn    func(fd uintptr) // bound once, so Control costs no allocation
}

func newBacklog(pc *net.UDPConn) (*backlog, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &backlog{rc: rc}
	b.fn = func(fd uintptr) {
		n := uint32(unsafe.Sizeof(b.mi))
		_, _, b.errno = unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&b.mi[0])), uintptr(unsafe.Pointer(&n)), 0)
	}
	if _, _, err := b.read(); err != nil {
		return nil, err
	}
	return b, nil
}

// read returns the bytes queued and the size of the receive buffer.
func (b *backlog) read() (queued, capacity uint32, err error) {
	if err := b.rc.Control(b.fn); err != nil {
		return 0, 0, err
	}
	if b.errno != 0 {
		return 0, 0, b.errno
	}
	return b.mi[unix.SK_MEMINFO_RMEM_ALLOC], b.mi[unix.SK_MEMINFO_RCVBUF], nil
}
