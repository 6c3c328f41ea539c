//go:build linux

// Command udpecho is the UDP ceiling of the benchmark suite (bench/run.sh):
// the fastest a tracker could answer on this machine if tracking cost
// nothing. It reads datagrams in batches (recvmmsg), answers each with a
// fixed BEP 15 reply that only copies the request's transaction ID, and
// sends the replies in batches (sendmmsg), on one goroutine and one socket.
//
//	connect (16 bytes, action 0)     -> 16-byte connect reply, a fixed connection ID
//	announce (>= 98 bytes, action 1) -> 20 + 6*N bytes: interval, counts, N fixed peers,
//	                                    N = min(-peers, the request's numwant if >= 0)
//	scrape (>= 36 bytes, action 2)   -> 8 + 12 bytes per info hash, fixed counts
//
// Anything else gets no reply. Nothing is looked up, stored or checked
// (not even the connection ID), so `warden load` counts every reply as a
// valid one while the server spends only what the kernel makes it spend.
// IPv4 only: the peers are 6 bytes each. Stop it with SIGINT or SIGTERM.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	protocolID     = 0x41727101980
	actionConnect  = 0
	actionAnnounce = 1
	actionScrape   = 2

	announceLen   = 98
	numWantOffset = 92 // int32 in an announce request
	maxScrape     = 74 // info hashes per scrape that fit a 1500-byte reply
	bufSize       = 2048
)

func main() {
	addr := flag.String("addr", "127.0.0.1:26970", "UDP address to answer on")
	peers := flag.Int("peers", 50, "peers in each announce reply (fewer if the request's numwant is lower)")
	batch := flag.Int("batch", 64, "datagrams read or written per system call")
	rcvbuf := flag.Int("rcvbuf", 0, "SO_RCVBUF/SO_SNDBUF in bytes; 0 keeps the system default")
	flag.Parse()
	if *peers < 0 || 20+6**peers > bufSize || *batch < 1 || *batch > 1024 {
		log.Fatalf("udpecho: -peers must be 0-%d and -batch 1-1024", (bufSize-20)/6)
	}
	ua, err := net.ResolveUDPAddr("udp4", *addr)
	if err != nil {
		log.Fatalf("udpecho: %v", err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		log.Fatalf("udpecho: %v", err)
	}
	if *rcvbuf > 0 {
		if err := conn.SetReadBuffer(*rcvbuf); err != nil {
			log.Fatalf("udpecho: %v", err)
		}
		if err := conn.SetWriteBuffer(*rcvbuf); err != nil {
			log.Fatalf("udpecho: %v", err)
		}
	}
	e, err := newEcho(conn, *batch, *peers)
	if err != nil {
		log.Fatalf("udpecho: %v", err)
	}
	fmt.Fprintf(os.Stderr, "udpecho: answering on %s\n", conn.LocalAddr())
	if err := e.run(); err != nil {
		log.Fatalf("udpecho: %v", err)
	}
}

// echo holds the batch buffers. The send headers point at the receive
// headers' address buffers, so a reply goes back to its source without a
// copy of the address.
type echo struct {
	rc syscall.RawConn

	rhs   []unix.Mmsghdr
	riov  []unix.Iovec
	names []unix.RawSockaddrAny
	in    [][]byte

	shs  []unix.Mmsghdr
	siov []unix.Iovec
	out  [][]byte

	announce []byte // the reply with every peer; shortened for a lower numwant

	// The system call in flight and its result.
	sn, sOff int
	n        int
	errno    syscall.Errno
	recvFn   func(fd uintptr) bool
	sendFn   func(fd uintptr) bool
}

func newEcho(conn *net.UDPConn, batch, peers int) (*echo, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	e := &echo{
		rc:    rc,
		rhs:   make([]unix.Mmsghdr, batch),
		riov:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrAny, batch),
		in:    make([][]byte, batch),
		shs:   make([]unix.Mmsghdr, batch),
		siov:  make([]unix.Iovec, batch),
		out:   make([][]byte, batch),
	}
	for i := range batch {
		e.in[i] = make([]byte, bufSize)
		e.out[i] = make([]byte, bufSize)
		e.riov[i].Base = &e.in[i][0]
		e.riov[i].SetLen(bufSize)
		e.rhs[i].Hdr.Iov = &e.riov[i]
		e.rhs[i].Hdr.SetIovlen(1)
		e.rhs[i].Hdr.Name = (*byte)(unsafe.Pointer(&e.names[i]))
		e.shs[i].Hdr.Iov = &e.siov[i]
		e.shs[i].Hdr.SetIovlen(1)
	}
	e.announce = make([]byte, 20+6*peers)
	binary.BigEndian.PutUint32(e.announce[0:], actionAnnounce)
	binary.BigEndian.PutUint32(e.announce[8:], 1800)           // interval
	binary.BigEndian.PutUint32(e.announce[12:], uint32(peers)) // leechers
	for i := range peers {
		p := e.announce[20+6*i:]
		copy(p, []byte{127, 3, byte(i >> 8), byte(i)})
		binary.BigEndian.PutUint16(p[4:], uint16(6881+i))
	}
	e.recvFn = e.doRecv
	e.sendFn = e.doSend
	return e, nil
}

func (e *echo) doRecv(fd uintptr) bool {
	for i := range e.rhs {
		e.rhs[i].Hdr.Namelen = unix.SizeofSockaddrAny
	}
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&e.rhs[0])), uintptr(len(e.rhs)), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false // wait until readable
	}
	e.n, e.errno = int(r), errno
	return true
}

func (e *echo) doSend(fd uintptr) bool {
	r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&e.shs[e.sOff])), uintptr(e.sn-e.sOff), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false // wait until writable
	}
	e.n, e.errno = int(r), errno
	return true
}

// run answers datagrams until the socket fails.
func (e *echo) run() error {
	for {
		e.n, e.errno = 0, 0
		if err := e.rc.Read(e.recvFn); err != nil {
			return err
		}
		if e.errno != 0 {
			if e.errno == unix.EINTR {
				continue
			}
			return os.NewSyscallError("recvmmsg", e.errno)
		}
		k := 0
		for i := range e.n {
			m := e.reply(e.out[k], e.in[i][:e.rhs[i].Len])
			if m == 0 {
				continue
			}
			e.siov[k].Base = &e.out[k][0]
			e.siov[k].SetLen(m)
			e.shs[k].Hdr.Name = e.rhs[i].Hdr.Name
			e.shs[k].Hdr.Namelen = e.rhs[i].Hdr.Namelen
			k++
		}
		if err := e.send(k); err != nil {
			return err
		}
	}
}

// send sends the first k replies, in as many calls as it takes.
func (e *echo) send(k int) error {
	for e.sOff, e.sn = 0, k; e.sOff < e.sn; {
		e.n, e.errno = 0, 0
		if err := e.rc.Write(e.sendFn); err != nil {
			return err
		}
		switch {
		case e.errno == unix.EINTR:
		case e.errno != 0:
			// The first datagram was refused (e.g. ECONNREFUSED or EPERM):
			// skip it rather than stop answering everyone else.
			e.sOff++
		default:
			e.sOff += e.n
		}
	}
	return nil
}

// reply writes into out the answer to the request in and returns its
// length, or 0 for no answer.
func (e *echo) reply(out, in []byte) int {
	if len(in) < 16 {
		return 0
	}
	action := binary.BigEndian.Uint32(in[8:])
	txid := in[12:16]
	switch {
	case action == actionConnect && binary.BigEndian.Uint64(in) == protocolID:
		binary.BigEndian.PutUint32(out[0:], actionConnect)
		copy(out[4:8], txid)
		binary.BigEndian.PutUint64(out[8:], 0x57415244454e2121) // any connection ID
		return 16
	case action == actionAnnounce && len(in) >= announceLen:
		r := e.announce
		if nw := int32(binary.BigEndian.Uint32(in[numWantOffset:])); nw >= 0 && 20+6*int(nw) < len(r) {
			r = r[:20+6*int(nw)]
		}
		copy(out, r)
		copy(out[4:8], txid)
		return len(r)
	case action == actionScrape && len(in) >= 16+20:
		n := min((len(in)-16)/20, maxScrape)
		binary.BigEndian.PutUint32(out[0:], actionScrape)
		copy(out[4:8], txid)
		for i := range n {
			p := out[8+12*i:]
			binary.BigEndian.PutUint32(p[0:], 10) // seeders
			binary.BigEndian.PutUint32(p[4:], 5)  // completed
			binary.BigEndian.PutUint32(p[8:], 40) // leechers
		}
		return 8 + 12*n
	}
	return 0
}
