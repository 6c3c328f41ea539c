package udptracker

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/bittorrent"
)

var sinkReply []byte

// populate adds n peers to ih, half of them seeders, of v4's family.
func populate(b *testing.B, c *testCodec, ih bittorrent.InfoHash, n int, v6 bool) {
	for i := range n {
		var a netip.Addr
		if v6 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		}
		addPeer(b, c.tr, ih, netip.AddrPortFrom(a, 6881), i%2 == 0)
	}
}

// BenchmarkAnnounce measures the codec (parse, cookie check, tracker,
// encode) for a leecher asking for the default 50 peers, by swarm size.
func BenchmarkAnnounce(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{1, 1_000, 100_000} {
			fam, src := "v4", src4
			if v6 {
				fam, src = "v6", src6
			}
			b.Run(fmt.Sprintf("%s/peers=%d", fam, n), func(b *testing.B) {
				c := newTestCodec(b, newTestTracker(b))
				populate(b, c, testHash(1), n, v6)
				pkt := announce{cid: c.connect(b, src), left: 1}.pkt()
				out := make([]byte, 0, c.maxReply())
				b.ReportAllocs()
				for b.Loop() {
					sinkReply = c.handle(src, pkt, out)
				}
			})
		}
	}
}

// BenchmarkAnnounceParallel runs one codec per goroutine over one
// tracker, as the workers do.
// BenchmarkAnnounceParallel is the codec, tracker and store on every core
// at once (-cpu 1,2,...), one codec per goroutine as one per worker, each
// goroutine a different source: how the in-process path scales.
func BenchmarkAnnounceParallel(b *testing.B) {
	tr := newTestTracker(b)
	c0 := newTestCodec(b, tr)
	for i := range 1000 {
		populate(b, c0, testHash(i), 20, false)
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := newTestCodec(b, tr)
		out := make([]byte, 0, c.maxReply())
		n := next.Add(1)
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)}), 6881)
		cid := c.connect(b, src)
		pkts := make([][]byte, 1000)
		for i := range pkts {
			pkts[i] = announce{cid: cid, ih: testHash(i), left: 1}.pkt()
		}
		i := int(n) * 389 // apart from the other goroutines, as real clients are
		for pb.Next() {
			sinkReply = c.handle(src, pkts[i%len(pkts)], out)
			i++
		}
	})
}

func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{1, 10, 64} {
		b.Run(fmt.Sprintf("hashes=%d", n), func(b *testing.B) {
			c := newTestCodec(b, newTestTracker(b))
			hashes := make([]bittorrent.InfoHash, n)
			for i := range hashes {
				hashes[i] = testHash(i)
				populate(b, c, hashes[i], 3, false)
			}
			pkt := scrapePkt(c.connect(b, src4), 1, hashes...)
			out := make([]byte, 0, c.maxReply())
			b.ReportAllocs()
			for b.Loop() {
				sinkReply = c.handle(src4, pkt, out)
			}
		})
	}
}

func BenchmarkConnect(b *testing.B) {
	c := newTestCodec(b, newTestTracker(b))
	pkt := connectPkt(1)
	out := make([]byte, 0, c.maxReply())
	b.ReportAllocs()
	for b.Loop() {
		sinkReply = c.handle(src4, pkt, out)
	}
}

// BenchmarkForgedCookie is the cost of a flood of announces with made-up
// connection IDs: what an attacker gets for each datagram.
func BenchmarkForgedCookie(b *testing.B) {
	c := newTestCodec(b, newTestTracker(b))
	pkt := announce{cid: 0xdeadbeef}.pkt()
	out := make([]byte, 0, c.maxReply())
	b.ReportAllocs()
	for b.Loop() {
		sinkReply = c.handle(src4, pkt, out)
	}
}

// BenchmarkServerAnnounce is end to end over loopback: one worker, a
// client that keeps a window of announces in flight. ns/op is per
// announce and includes the client's system calls on the same machine.
func BenchmarkServerAnnounce(b *testing.B) {
	for _, portable := range []bool{false, true} {
		name := "recvmmsg"
		if portable {
			name = "x/net"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Workers = 1
			cfg.SocketBufferBytes = 4 << 20
			s, err := listen("127.0.0.1:0", newTestTracker(b), cfg, discardLog(), options{portable: portable})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- s.Run(ctx) }()
			defer func() { cancel(); <-done }()
			conn := benchDial(b, s.Addr())
			buf := make([]byte, 2048)
			conn.Write(connectPkt(1))
			n, err := conn.Read(buf)
			if err != nil || n != 16 {
				b.Fatalf("connect: %v", err)
			}
			cid := binary.BigEndian.Uint64(buf[8:])
			const window = 32
			pkts := make([][]byte, window)
			for i := range pkts {
				pkts[i] = announce{cid: cid, ih: testHash(i % 8), left: 1, port: uint16(1000 + i), portSet: true}.pkt()
			}
			conn.SetReadDeadline(time.Now().Add(time.Minute))
			b.ReportAllocs()
			b.ResetTimer()
			sent, recv := 0, 0
			for recv < b.N {
				for sent < b.N && sent-recv < window {
					conn.Write(pkts[sent%window])
					sent++
				}
				if _, err := conn.Read(buf); err != nil {
					b.Fatalf("after %d of %d replies: %v", recv, b.N, err)
				}
				recv++
			}
		})
	}
}

func benchDial(b *testing.B, to netip.AddrPort) *net.UDPConn {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadBuffer(4 << 20)
	b.Cleanup(func() { conn.Close() })
	return conn
}
