package udptracker

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"warden/internal/limit"
)

// TestServerMovesBansIntoKernel floods a running server from one source
// until the limiter bans it, then checks that the guard puts the ban in
// the sockets' filter and the source's datagrams stop reaching the worker.
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
	done := make(chan error, 2)
	go func() { done <- s.Run(ctx) }()
	go func() { done <- guard.Run(ctx) }()
	defer func() { cancel(); <-done; <-done }()

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
