package httptracker

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"warden/internal/limit"
)

// TestBannedSourceDroppedAtSYN floods the tracker from one source until
// the guard bans it, and checks that its next connection attempts get no
// answer at all (the kernel drops the SYN: no handshake, no place in the
// accept queue) while another source is served.
func TestBannedSourceDroppedAtSYN(t *testing.T) {
	lcfg := limit.DefaultConfig()
	lcfg.RatePerSec, lcfg.Burst, lcfg.BanAfter, lcfg.BanWindow = 1, 2, 5, time.Minute
	guard := newGuard(t, lcfg, "")
	s, err := Listen("127.0.0.1:0", newTestTracker(t), guard, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- s.Run(ctx) }()
	go func() { done <- guard.Run(ctx) }()
	defer func() { cancel(); <-done; <-done }()

	// Pipelined announces from 127.0.0.7 until it is banned.
	c := dialFrom(t, s, "127.0.0.7")
	defer c.Close()
	for range 20 {
		io.WriteString(c, "GET "+testAnnounce+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	io.Copy(io.Discard, c) // until the server closes it, banned
	if guard.Limiter().Stats().BansImposed == 0 {
		t.Fatal("20 announces over a rate of 1/s with ban_after 5: no ban")
	}
	deadline := time.Now().Add(2 * time.Second)
	for guard.Stats().KernelFilterPrefixes == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ban did not reach the SYN filter within 2 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}, Timeout: 300 * time.Millisecond}
	if c, err := d.Dial("tcp", s.Addr().String()); err == nil || !isTimeout(err) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("banned source's connection attempt: %v, want no answer (a timeout)", err)
	}
	other := dialFrom(t, s, "127.0.0.8")
	defer other.Close()
	io.WriteString(other, "GET "+testAnnounce+" HTTP/1.1\r\nHost: x\r\n\r\n")
	other.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(other), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("other source not served: %v %v", resp, err)
	}
}
