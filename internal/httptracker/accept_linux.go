package httptracker

import (
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawListener returns a duplicate of ln's socket, for acceptRaw, if ln is
// a TCP listener; nil otherwise. net gives no way to wait on a listener
// through its own descriptor (its RawConn refuses Read), but an os.File
// of a non-blocking duplicate is registered with the same poller.
func rawListener(ln net.Listener) *os.File {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	f, err := tl.File()
	if err != nil {
		return nil
	}
	return f
}

// refuseBatch bounds the connections acceptRaw refuses in one call, so
// that a flood keeping the queue full cannot hold the accepting goroutine
// (with one core, the whole server) for longer than that.
const refuseBatch = 64

// acceptRaw takes connections from the kernel's queue with accept4(2) and
// refuses by a reset those admit would refuse anyway (see refusable)
// before they cost anything more: no net.Conn, no registration with the
// poller, no keep-alive options, no allocation. Under a flood of banned
// or capped sources that is most of the work a refused connection made.
// It returns the first connection not refused, as a net.Conn, or nil and
// no error after refuseBatch refusals.
func (l *limitListener) acceptRaw() (net.Conn, error) {
	nfd, refused := -1, 0
	var aerr error
	rc, err := l.raw.SyscallConn()
	if err != nil {
		return nil, err
	}
	err = rc.Read(func(fd uintptr) bool {
		for refused < refuseBatch {
			var ip netip.Addr
			nfd, ip, aerr = accept4(int(fd))
			switch aerr {
			case nil:
			case unix.EAGAIN:
				return false // wait until another comes
			case unix.EINTR, unix.ECONNABORTED:
				continue
			default:
				return true
			}
			if !l.refusable(ip, l.now()) {
				return true
			}
			// Counted before the reset, so that whoever sees the reset
			// finds it counted.
			l.refusedEarly(ip)
			unix.SetsockoptLinger(nfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
			unix.Close(nfd)
			nfd = -1
			refused++
		}
		return true
	})
	switch {
	case err != nil:
		if l.closed.Load() {
			err = net.ErrClosed // as net's own Accept says it
		}
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
	case aerr != nil:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", aerr)}
	case nfd < 0:
		return nil, nil
	}
	f := os.NewFile(uintptr(nfd), "")
	c, err := net.FileConn(f) // a dup of nfd, registered with the poller
	f.Close()
	if err != nil {
		// Out of descriptors or memory for this one connection: the
		// client sees it closed, the server goes on.
		l.stats.connsRefused.n.Add(1)
		return nil, nil
	}
	return c, nil
}

// accept4 accepts one connection on the non-blocking listening socket
// fd, returning its descriptor (non-blocking, close-on-exec) and the
// peer's address, unmapped. Unlike unix.Accept4 it does not allocate.
func accept4(fd int) (int, netip.Addr, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.Addr{}, e
	}
	var ip netip.Addr
	switch rsa.Addr.Family {
	case unix.AF_INET:
		ip = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa)).Addr)
	case unix.AF_INET6:
		ip = netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa)).Addr).Unmap()
	}
	return int(r), ip, nil
}
