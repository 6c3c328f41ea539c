package udptracker

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"warden/internal/limit"
)

// TestKernelBans attaches the filter to real sockets, plain IPv4 and
// dual-stack, and checks which sources' datagrams still arrive.
func TestKernelBans(t *testing.T) {
	bans := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.2/32"),
		netip.MustParsePrefix("127.0.5.0/24"),
		netip.MustParsePrefix("2001:db8::/32"), // IPv6 bans stay in the process
	}
	for _, listen := range []string{"127.0.0.1:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", listen)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if err := setKernelBans(pc.(*net.UDPConn), bans); err != nil {
				t.Fatalf("setKernelBans: %v", err)
			}
			port := pc.LocalAddr().(*net.UDPAddr).Port
			send := func(from string) {
				c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: port})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte(from))
			}
			for _, from := range []string{"127.0.0.2", "127.0.5.9", "127.0.0.3", "127.0.6.1"} {
				send(from)
			}
			got := map[string]bool{}
			buf := make([]byte, 64)
			for {
				pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					break
				}
				got[string(buf[:n])] = true
			}
			want := map[string]bool{"127.0.0.3": true, "127.0.6.1": true}
			if len(got) != len(want) || !got["127.0.0.3"] || !got["127.0.6.1"] {
				t.Fatalf("received from %v, want only %v", got, want)
			}
			// Lifting the bans lets everyone through again.
			if err := setKernelBans(pc.(*net.UDPConn), nil); err != nil {
				t.Fatal(err)
			}
			send("127.0.0.2")
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err := pc.ReadFrom(buf); err != nil || string(buf[:n]) != "127.0.0.2" {
				t.Fatalf("after lifting the bans: %q, %v", buf[:n], err)
			}
		})
	}
}

func TestBanFilterSize(t *testing.T) {
	var many []netip.Prefix
	for i := range 5000 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 32))
	}
	raw, err := banFilter(many)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 4096 {
		t.Fatalf("filter of %d instructions, the kernel takes at most 4096", len(raw))
	}
}

// TestServerMovesBansIntoKernel floods a running server from one source
// until the limiter bans it, then checks that the ban reaches the socket
// filter and the source's datagrams stop reaching the worker.
func TestServerMovesBansIntoKernel(t *testing.T) {
	lcfg := limit.DefaultConfig()
	lcfg.RatePerSec, lcfg.Burst, lcfg.BanAfter = 1, 1, 5
	guard, err := limit.NewGuard(lcfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	s, err := Listen("127.0.0.1:0", newTestTracker(t), guard, cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.44")}, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(connectPkt(7))
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(buf)
	if err != nil || n != connectReplyLen {
		t.Fatalf("connect: %d bytes, %v", n, err)
	}
	pkt := announce{cid: binary.BigEndian.Uint64(buf[8:16]), tid: 1}.pkt()
	for range 50 {
		c.Write(pkt)
	}
	deadline := time.Now().Add(3 * time.Second)
	for s.Stats().KernelBans == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ban never reached the kernel: %+v", s.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := s.Stats().Received
	for range 200 {
		c.Write(pkt)
	}
	time.Sleep(200 * time.Millisecond)
	if got := s.Stats().Received - before; got != 0 {
		t.Fatalf("%d datagrams from a banned source reached the worker", got)
	}
}
