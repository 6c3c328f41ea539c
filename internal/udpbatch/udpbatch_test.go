package udpbatch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// newConn makes a Conn over pc, failing the test if it cannot.
type newConn func(tb testing.TB, pc *net.UDPConn, bufs [][]byte, maxQueue int) *Conn

// each runs test as a subtest for each implementation.
func each(t *testing.T, test func(t *testing.T, newConn newConn)) {
	t.Run("x/net", func(t *testing.T) {
		test(t, func(_ testing.TB, pc *net.UDPConn, bufs [][]byte, maxQueue int) *Conn {
			return NewPortable(pc, bufs, maxQueue)
		})
	})
	if !haveMmsg {
		return
	}
	t.Run("recvmmsg", func(t *testing.T) {
		test(t, func(tb testing.TB, pc *net.UDPConn, bufs [][]byte, maxQueue int) *Conn {
			c, err := New(pc, bufs, maxQueue)
			if err != nil {
				tb.Fatal(err)
			}
			if c.Name() != "recvmmsg" {
				tb.Fatalf("New made %s, want recvmmsg", c.Name())
			}
			return c
		})
	})
}

func makeBufs(n, size int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs
}

// listen opens an unconnected socket on addr, or skips the test if the
// machine has no such address (IPv6).
func listen(tb testing.TB, addr string) *net.UDPConn {
	tb.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		tb.Skipf("listen %s: %v", addr, err)
	}
	tb.Cleanup(func() { pc.Close() })
	return pc
}

func dial(tb testing.TB, to netip.AddrPort) *net.UDPConn {
	tb.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func port(pc *net.UDPConn) uint16 { return pc.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

func localAddr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// serve reads until want datagrams have come, or fails after a while,
// and answers each at its source with answer(datagram) as it goes. It
// returns the datagrams and their sources.
func serve(tb testing.TB, c *Conn, want int, answer func([]byte) []byte) (pkts [][]byte, srcs []netip.AddrPort) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(pkts) < want; {
		if time.Now().After(deadline) {
			tb.Fatalf("read %d datagrams, want %d", len(pkts), want)
		}
		n, err := c.Poll()
		if err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		for i := range n {
			pkts = append(pkts, bytes.Clone(c.Packet(i)))
			srcs = append(srcs, c.Source(i))
			if answer != nil {
				c.Reply(i, answer(c.Packet(i)))
			}
		}
		if answer == nil {
			continue
		}
		if sent, err := c.Flush(); sent != n || err != nil {
			tb.Fatalf("Flush = %d, %v; want %d, nil", sent, err, n)
		}
	}
	return pkts, srcs
}

func twice(b []byte) []byte { return append(bytes.Clone(b), b...) }

// TestReply is the server's use: datagrams from several clients, each
// answered at its source. On a dual-stack socket an IPv4 client is seen
// IPv4-mapped, and still gets its answer.
func TestReply(t *testing.T) {
	tests := []struct{ listen, dial string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
		{"[::]:0", "127.0.0.1"}, // dual stack
	}
	each(t, func(t *testing.T, newConn newConn) {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s<-%s", tt.listen, tt.dial), func(t *testing.T) {
				pc := listen(t, tt.listen)
				c := newConn(t, pc, makeBufs(2, 64), 2) // fewer buffers than clients: more than one read
				to := netip.AddrPortFrom(netip.MustParseAddr(tt.dial), port(pc))
				clients := []*net.UDPConn{dial(t, to), dial(t, to), dial(t, to)}
				for i, cl := range clients {
					if _, err := cl.Write([]byte{'a' + byte(i)}); err != nil {
						t.Fatal(err)
					}
				}
				pkts, srcs := serve(t, c, len(clients), twice)
				for i := range pkts {
					k := int(pkts[i][0] - 'a')
					if len(pkts[i]) != 1 || k < 0 || k >= len(clients) {
						t.Fatalf("datagram %q, want one of a, b, c", pkts[i])
					}
					want := localAddr(clients[k])
					if got := srcs[i]; got.Addr().Unmap() != want.Addr().Unmap() || got.Port() != want.Port() {
						t.Errorf("Source = %v, want %v", got, want)
					}
					if tt.listen == "[::]:0" && !srcs[i].Addr().Is4In6() {
						t.Errorf("Source = %v on a dual-stack socket, want it IPv4-mapped", srcs[i])
					}
				}
				buf := make([]byte, 64)
				for i, cl := range clients {
					cl.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := cl.Read(buf)
					if want := []byte{'a' + byte(i), 'a' + byte(i)}; err != nil || !bytes.Equal(buf[:n], want) {
						t.Errorf("client %d got %q, %v; want %q", i, buf[:n], err, want)
					}
				}
			})
		}
	})
}

// TestLongDatagram checks that a datagram longer than its buffer is cut
// to the buffer, so a caller can tell it from one that fits.
func TestLongDatagram(t *testing.T) {
	each(t, func(t *testing.T, newConn newConn) {
		pc := listen(t, "127.0.0.1:0")
		c := newConn(t, pc, makeBufs(2, 9), 2)
		cl := dial(t, localAddr(pc))
		cl.Write(bytes.Repeat([]byte{'x'}, 8))
		cl.Write(bytes.Repeat([]byte{'y'}, 100))
		pkts, _ := serve(t, c, 2, nil)
		if string(pkts[0]) != "xxxxxxxx" || string(pkts[1]) != "yyyyyyyyy" {
			t.Errorf("datagrams %q, want 8 x and 9 of the 100 y", pkts)
		}
	})
}

// TestConnected is the client's use: requests queued on a connected
// socket and flushed in one go, replies read with a deadline or polled.
func TestConnected(t *testing.T) {
	each(t, func(t *testing.T, newConn newConn) {
		srv := listen(t, "127.0.0.1:0")
		pc := dial(t, localAddr(srv))
		c := newConn(t, pc, makeBufs(4, 64), 8)
		if n, err := c.Poll(); n != 0 || err != nil {
			t.Errorf("Poll with nothing queued = %d, %v; want 0, nil", n, err)
		}
		pc.SetReadDeadline(time.Now().Add(-time.Second))
		if _, err := c.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read after the deadline = %v, want os.ErrDeadlineExceeded", err)
		}
		reqs := []string{"one", "two", "three"}
		for _, r := range reqs {
			c.Queue([]byte(r), nil)
		}
		if n, err := c.Flush(); n != len(reqs) || err != nil {
			t.Fatalf("Flush = %d, %v; want %d, nil", n, err, len(reqs))
		}
		buf := make([]byte, 64)
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		for _, want := range reqs {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != want {
				t.Fatalf("server got %q, %v; want %q", buf[:n], err, want)
			}
			srv.WriteToUDPAddrPort(twice(buf[:n]), from)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []string
		for len(got) < len(reqs) {
			n, err := c.Read()
			if err != nil {
				t.Fatalf("Read = %d, %v after %q", n, err, got)
			}
			for i := range n {
				got = append(got, string(c.Packet(i)))
			}
		}
		if fmt.Sprint(got) != "[oneone twotwo threethree]" {
			t.Errorf("replies %q, want each request twice, in order", got)
		}
		if n, err := c.Flush(); n != 0 || err != nil {
			t.Errorf("Flush of nothing = %d, %v; want 0, nil", n, err)
		}
	})
}

// TestFlushRefused checks what happens to a queue when the system refuses
// a datagram in it: the refused one goes, the rest stay for the next
// Flush, or Discard drops them. A connected socket whose peer has gone is
// refused (ECONNREFUSED) once an ICMP error has come back.
func TestFlushRefused(t *testing.T) {
	each(t, func(t *testing.T, newConn newConn) {
		gone := listen(t, "127.0.0.1:0")
		pc := dial(t, localAddr(gone))
		gone.Close()
		c := newConn(t, pc, makeBufs(1, 64), 3)
		refuse := func() (sent int) {
			t.Helper()
			for range 500 {
				for range 3 {
					c.Queue([]byte("x"), nil)
				}
				n, err := c.Flush()
				if err != nil {
					if !errors.Is(err, syscall.ECONNREFUSED) {
						t.Fatalf("Flush = %d, %v; want ECONNREFUSED", n, err)
					}
					return n
				}
				c.Discard()
				time.Sleep(time.Millisecond) // for the ICMP error to come back
			}
			t.Fatal("no datagram refused")
			return 0
		}
		// Flush again until the three are accounted for.
		done := refuse() + 1
		for range 3 {
			n, err := c.Flush()
			done += n
			if err != nil {
				done++
			}
		}
		if done != 3 {
			t.Errorf("%d of 3 datagrams sent or refused, want each exactly once", done)
		}
		refuse()
		c.Discard()
		if n, err := c.Flush(); n != 0 || err != nil {
			t.Errorf("Flush after Discard = %d, %v; want 0, nil", n, err)
		}
	})
}

// TestClosed checks that closing the socket ends Read and Flush with
// net.ErrClosed, and empties the queue.
func TestClosed(t *testing.T) {
	each(t, func(t *testing.T, newConn newConn) {
		pc := listen(t, "127.0.0.1:0")
		c := newConn(t, pc, makeBufs(1, 64), 2)
		cl := dial(t, localAddr(pc))
		cl.Write([]byte("x"))
		serve(t, c, 1, nil)
		c.Reply(0, []byte("y"))
		done := make(chan error)
		go func() {
			_, err := c.Read()
			done <- err
		}()
		time.Sleep(10 * time.Millisecond)
		pc.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still waiting after Close")
		}
		if n, err := c.Flush(); n != 0 || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Flush after Close = %d, %v; want 0, net.ErrClosed", n, err)
		}
		if n, err := c.Flush(); n != 0 || err != nil {
			t.Errorf("second Flush = %d, %v; want 0, nil: the queue emptied", n, err)
		}
	})
}

// TestAllocs guards the promise of New: a server's batch and a client's
// cost no allocation.
func TestAllocs(t *testing.T) {
	if !haveMmsg {
		t.Skip("the portable Conn allocates source addresses")
	}
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	pc := listen(t, "127.0.0.1:0")
	srv, err := New(pc, makeBufs(4, 64), 4)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := New(dial(t, localAddr(pc)), makeBufs(4, 64), 4)
	if err != nil {
		t.Fatal(err)
	}
	req, reply := []byte("request"), []byte("reply")
	var sink netip.AddrPort
	step := func() {
		cl.Queue(req, nil)
		if n, err := cl.Flush(); n != 1 || err != nil {
			t.Fatalf("client Flush = %d, %v", n, err)
		}
		n, err := srv.Read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			sink = srv.Source(i)
			srv.Reply(i, reply)
		}
		if sent, err := srv.Flush(); sent != n || err != nil {
			t.Fatalf("server Flush = %d, %v", sent, err)
		}
		for got := 0; got < n; {
			m, err := cl.Read()
			if err != nil {
				t.Fatal(err)
			}
			got += m
		}
	}
	step()
	if a := testing.AllocsPerRun(100, step); a != 0 {
		t.Errorf("a request and its reply allocate %v times, want 0", a)
	}
	_ = sink
}
