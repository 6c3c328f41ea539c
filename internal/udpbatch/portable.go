package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// xnetConn is the portable implementation: golang.org/x/net's ReadBatch
// and WriteBatch, which use recvmmsg and sendmmsg on Linux and one
// datagram per call elsewhere. ReadBatch allocates each source address (a
// *net.UDPAddr and its IP).
type xnetConn struct {
	pc *net.UDPConn
	rw interface {
		ReadBatch(ms []ipv4.Message, flags int) (int, error)
		WriteBatch(ms []ipv4.Message, flags int) (int, error)
	}
	in   []ipv4.Message
	out  []ipv4.Message
	off  int // the first queued datagram not yet sent
	nOut int
}

// ipv4.Message and ipv6.Message are both socket.Message, so one slice
// serves either family.
var _ []ipv6.Message = []ipv4.Message(nil)

func newXNetConn(pc *net.UDPConn, bufs [][]byte, maxQueue int) *xnetConn {
	c := &xnetConn{pc: pc, in: make([]ipv4.Message, len(bufs)), out: make([]ipv4.Message, maxQueue)}
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	if local.Is6() && !local.Is4In6() {
		c.rw = ipv6.NewPacketConn(pc)
	} else {
		c.rw = ipv4.NewPacketConn(pc)
	}
	for i, b := range bufs {
		c.in[i].Buffers = [][]byte{b}
	}
	for i := range c.out {
		c.out[i].Buffers = make([][]byte, 1)
	}
	return c
}

func (c *xnetConn) read(poll bool) (int, error) {
	flags := 0
	if poll {
		if dontWait == 0 {
			// No way to ask for no wait: wait a little.
			if err := c.pc.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
				return 0, err
			}
			defer c.pc.SetReadDeadline(time.Time{})
		}
		flags = dontWait
	}
	n, err := c.rw.ReadBatch(c.in, flags)
	if err != nil && poll && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, os.ErrDeadlineExceeded)) {
		return 0, nil
	}
	return max(n, 0), err
}

func (c *xnetConn) packet(i int) []byte {
	m := &c.in[i]
	return m.Buffers[0][:m.N]
}

func (c *xnetConn) source(i int) netip.AddrPort {
	if ua, ok := c.in[i].Addr.(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	return netip.AddrPort{}
}

func (c *xnetConn) reply(i int, b []byte) {
	o := &c.out[c.nOut]
	o.Buffers[0], o.OOB, o.Addr = b, nil, c.in[i].Addr
	c.nOut++
}

func (c *xnetConn) queue(b, oob []byte) {
	o := &c.out[c.nOut]
	o.Buffers[0], o.OOB, o.Addr = b, oob, nil
	c.nOut++
}

func (c *xnetConn) flush() (int, error) {
	sent := 0
	for c.off < c.nOut {
		n, err := c.rw.WriteBatch(c.out[c.off:c.nOut], 0)
		n = max(n, 0) // -1 with an error
		sent += n
		c.off += n
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				c.discard()
				return sent, err
			}
			c.off++ // the refused one
			if c.off >= c.nOut {
				c.discard()
			}
			var errno syscall.Errno
			if errors.As(err, &errno) {
				err = errno
			}
			return sent, err
		}
	}
	c.discard()
	return sent, nil
}

func (c *xnetConn) discard() {
	for i := range c.out[:c.nOut] {
		o := &c.out[i]
		o.Buffers[0], o.OOB, o.Addr = nil, nil, nil // let them go
	}
	c.off, c.nOut = 0, 0
}
