// Package udpbatch reads and writes UDP datagrams in batches, many per
// system call, without allocating per batch. It serves both kinds of
// user: a server on one unconnected socket, which answers each datagram
// at its source (Reply), and a client on connected sockets (Queue), which
// may hand each datagram a control message such as UDP GSO's.
//
// On Linux it issues recvmmsg and sendmmsg itself (see New); elsewhere,
// and where asked with NewPortable, it uses golang.org/x/net's ReadBatch
// and WriteBatch, which read one datagram per call outside Linux and
// allocate the source address of each. What the datagrams mean, and what
// to send back, is the caller's business.
package udpbatch

import (
	"net"
	"net/netip"
)

// Conn is one socket's batch I/O. A Conn is not safe for concurrent use,
// except that the socket may be closed from elsewhere to end a Read or a
// Flush that waits.
type Conn struct {
	m *mmsgConn // nil when portable
	x *xnetConn
}

// New returns the fastest Conn for the platform over pc. Read fills bufs,
// one datagram per buffer; a datagram longer than its buffer is cut to
// it, so a buffer one byte longer than the longest datagram wanted shows
// the longer ones. Conns read by one goroutine may share bufs. At most
// maxQueue datagrams may be queued between Flushes.
//
// On Linux, recvmmsg and sendmmsg are issued directly, as raw system
// calls, with every header and address prepared once; a source address
// is decoded from the kernel's sockaddr straight into a netip.AddrPort.
// Nothing is allocated after New.
func New(pc *net.UDPConn, bufs [][]byte, maxQueue int) (*Conn, error) {
	if haveMmsg {
		m, err := newMmsgConn(pc, bufs, maxQueue)
		if err != nil {
			return nil, err
		}
		return &Conn{m: m}, nil
	}
	return NewPortable(pc, bufs, maxQueue), nil
}

// NewPortable is New with golang.org/x/net's batch I/O on every platform;
// tests use it to cover the fallback on Linux.
func NewPortable(pc *net.UDPConn, bufs [][]byte, maxQueue int) *Conn {
	return &Conn{x: newXNetConn(pc, bufs, maxQueue)}
}

// Name names the implementation for a log line: "recvmmsg" or "x/net".
func (c *Conn) Name() string {
	if c.m != nil {
		return "recvmmsg"
	}
	return "x/net"
}

// Read waits until a datagram is queued on the socket, or its read
// deadline passes, and reads as many as are queued, up to one per buffer.
// It returns how many it read; Packet and Source tell them. The error
// wraps net.ErrClosed once the socket is closed, and
// os.ErrDeadlineExceeded after the deadline.
func (c *Conn) Read() (int, error) {
	if c.m != nil {
		return c.m.read(false)
	}
	return c.x.read(false)
}

// Poll is Read without the wait: it returns 0 if nothing is queued.
// Outside Unix it waits up to a millisecond instead.
func (c *Conn) Poll() (int, error) {
	if c.m != nil {
		return c.m.read(true)
	}
	return c.x.read(true)
}

// Packet returns datagram i of the last Read or Poll, in its buffer.
func (c *Conn) Packet(i int) []byte {
	if c.m != nil {
		return c.m.packet(i)
	}
	return c.x.packet(i)
}

// Source returns the source of datagram i of the last Read or Poll, or
// the zero AddrPort if the system did not say. On a dual-stack socket an
// IPv4 source is IPv4-mapped. The recvmmsg path leaves out an IPv6
// source's zone; Reply still answers on the interface it came in on.
func (c *Conn) Source(i int) netip.AddrPort {
	if c.m != nil {
		return c.m.source(i)
	}
	return c.x.source(i)
}

// Reply queues b to be sent to the source of datagram i of the last Read
// or Poll. b must stay untouched until Flush returns.
func (c *Conn) Reply(i int, b []byte) {
	if c.m != nil {
		c.m.reply(i, b)
		return
	}
	c.x.reply(i, b)
}

// Queue queues b to be sent on a connected socket, with the control
// message oob if it is not empty. b and oob must stay untouched until
// Flush returns.
func (c *Conn) Queue(b, oob []byte) {
	if c.m != nil {
		c.m.queue(b, oob)
		return
	}
	c.x.queue(b, oob)
}

// Flush sends the queued datagrams in order, in as few system calls as
// it can, until the queue is empty or the system refuses one. It returns
// how many it sent and the refusal's error. The refused datagram leaves
// the queue and those after it stay: Flush again sends them, Discard
// drops them. An error that wraps net.ErrClosed, or a write deadline's,
// empties the queue.
//
// A refusal is the errno alone (a syscall.Errno on Unix), so that it
// costs no allocation when a server meets many.
func (c *Conn) Flush() (int, error) {
	if c.m != nil {
		return c.m.flush()
	}
	return c.x.flush()
}

// Discard empties the queue.
func (c *Conn) Discard() {
	if c.m != nil {
		c.m.discard()
		return
	}
	c.x.discard()
}
