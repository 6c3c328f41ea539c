// Command udpecho is the UDP ceiling of the benchmark suite (bench/run.sh):
// the fastest a tracker could answer on this machine if tracking cost
// nothing. It reads datagrams in batches (recvmmsg on Linux), answers each
// with a fixed BEP 15 reply that only copies the request's transaction ID,
// and sends the replies in batches (sendmmsg), on one goroutine and one
// socket, with the batch I/O and wire format the tracker uses.
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
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/udpbatch"
)

const (
	maxScrape = 74 // info hashes per scrape that fit a 1500-byte reply
	bufSize   = 2048
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
	log.Fatalf("udpecho: %v", e.run())
}

// echo is the server: its batch I/O, a reply buffer per batch slot, and
// the parts of the replies that never change.
type echo struct {
	conn    *udpbatch.Conn
	out     [][]byte
	peers   []byte              // of an announce reply; cut for a lower numwant
	scrapes []bittorrent.Scrape // the entries of the longest scrape reply
	ann     bep15.Announce      // scratch
}

func newEcho(pc *net.UDPConn, batch, peers int) (*echo, error) {
	in := make([][]byte, batch)
	e := &echo{out: make([][]byte, batch), scrapes: make([]bittorrent.Scrape, maxScrape)}
	for i := range batch {
		in[i] = make([]byte, bufSize)
		e.out[i] = make([]byte, 0, bufSize)
	}
	var err error
	if e.conn, err = udpbatch.New(pc, in, batch); err != nil {
		return nil, err
	}
	for i := range peers {
		e.peers = append(e.peers, 127, 3, byte(i>>8), byte(i))
		e.peers = binary.BigEndian.AppendUint16(e.peers, uint16(6881+i))
	}
	for i := range e.scrapes {
		e.scrapes[i] = bittorrent.Scrape{Complete: 10, Downloaded: 5, Incomplete: 40}
	}
	return e, nil
}

// run answers datagrams until the socket fails.
func (e *echo) run() error {
	for {
		n, err := e.conn.Read()
		if err != nil {
			return err
		}
		k := 0
		for i := range n {
			r := e.reply(e.out[k][:0], e.conn.Packet(i))
			if r == nil {
				continue
			}
			e.conn.Reply(i, r)
			k++
		}
		// A refused reply (ECONNREFUSED, EPERM) is skipped rather than
		// stop answering everyone else.
		for {
			_, err := e.conn.Flush()
			if err == nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
		}
	}
}

// reply appends to out the answer to the request in, or returns nil for
// no answer.
func (e *echo) reply(out, in []byte) []byte {
	h, ok := bep15.ParseHeader(in)
	if !ok {
		return nil
	}
	switch h.Action {
	case bep15.ActionConnect:
		if h.ConnID != bep15.ProtocolID {
			return nil
		}
		return bep15.AppendConnectReply(out, h.TxID, 0x57415244454e2121) // any connection ID
	case bep15.ActionAnnounce:
		if _, ok := bep15.ParseAnnounce(in, &e.ann); !ok {
			return nil
		}
		peers := e.peers
		if nw := int(e.ann.NumWant); nw >= 0 && bittorrent.CompactLen4*nw < len(peers) {
			peers = peers[:bittorrent.CompactLen4*nw]
		}
		fixed := bep15.AnnounceReply{Interval: 1800, Leechers: uint32(len(e.peers) / bittorrent.CompactLen4)}
		return bep15.AppendAnnounceReply(out, h.TxID, fixed, peers)
	case bep15.ActionScrape:
		n := min((len(in)-bep15.HeaderLen)/bep15.HashLen, maxScrape)
		if n == 0 {
			return nil
		}
		return bep15.AppendScrapeReply(out, h.TxID, e.scrapes[:n])
	}
	return nil
}
