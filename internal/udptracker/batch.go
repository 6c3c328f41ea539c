package udptracker

import (
	"errors"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn reads and writes datagrams in batches on one socket. A worker
// owns its batchConn; it is not safe for concurrent use, except that the
// socket may be closed from elsewhere to unblock read and flush.
type batchConn interface {
	// read blocks until at least one datagram arrives and returns how
	// many were read into the batch. The error wraps net.ErrClosed once
	// the socket is closed.
	read() (int, error)
	// packet returns datagram i of the last read and its source. A
	// datagram larger than maxPacket is returned with maxPacket+1 bytes,
	// so that the codec drops it.
	packet(i int) (src netip.AddrPort, pkt []byte)
	// queue adds b as a reply to the source of datagram i of the last
	// read. b must stay untouched until flush returns.
	queue(i int, b []byte)
	// flush writes the queued replies and empties the queue. It returns
	// how many were sent and how many the OS refused (skipped, not
	// retried), and a non-nil error only when the socket is closed.
	flush() (sent, refused int, err error)
}

// xnetConn is the portable batchConn: golang.org/x/net's ReadBatch and
// WriteBatch, which use recvmmsg and sendmmsg on Linux and read one
// datagram per call elsewhere. ReadBatch allocates the source address of
// every datagram (a *net.UDPAddr and its IP), so on Linux warden uses
// mmsgConn instead.
type xnetConn struct {
	rw interface {
		ReadBatch(ms []ipv4.Message, flags int) (int, error)
		WriteBatch(ms []ipv4.Message, flags int) (int, error)
	}
	in   []ipv4.Message
	out  []ipv4.Message
	nOut int
}

var (
	_ batchConn = (*xnetConn)(nil)

	// ipv4.Message and ipv6.Message are both socket.Message, so one
	// slice serves either.
	_ []ipv6.Message = []ipv4.Message(nil)
)

// newXNetConn returns a batchConn over pc, a socket of the family v6 says,
// with batch receive buffers of maxPacket+1 bytes each.
func newXNetConn(pc *net.UDPConn, v6 bool, batch int) *xnetConn {
	c := &xnetConn{in: make([]ipv4.Message, batch), out: make([]ipv4.Message, batch)}
	if v6 {
		c.rw = ipv6.NewPacketConn(pc)
	} else {
		c.rw = ipv4.NewPacketConn(pc)
	}
	slab := make([]byte, batch*(maxPacket+1))
	for i := range c.in {
		c.in[i].Buffers = [][]byte{slab[i*(maxPacket+1) : (i+1)*(maxPacket+1)]}
		c.out[i].Buffers = make([][]byte, 1)
	}
	return c
}

func (c *xnetConn) read() (int, error) {
	n, err := c.rw.ReadBatch(c.in, 0)
	return max(n, 0), err
}

func (c *xnetConn) packet(i int) (netip.AddrPort, []byte) {
	m := &c.in[i]
	ua, _ := m.Addr.(*net.UDPAddr)
	if ua == nil {
		return netip.AddrPort{}, nil
	}
	return ua.AddrPort(), m.Buffers[0][:m.N]
}

func (c *xnetConn) queue(i int, b []byte) {
	o := &c.out[c.nOut]
	o.Buffers[0] = b
	o.Addr = c.in[i].Addr
	c.nOut++
}

func (c *xnetConn) flush() (sent, refused int, err error) {
	ms := c.out[:c.nOut]
	c.nOut = 0
	for len(ms) > 0 {
		n, err := c.rw.WriteBatch(ms, 0)
		n = max(n, 0) // -1 with an error
		sent += n
		ms = ms[n:]
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return sent, refused, err
			}
			refused++
			ms = ms[1:]
		}
	}
	return sent, refused, nil
}
