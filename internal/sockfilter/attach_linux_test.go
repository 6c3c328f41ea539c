package sockfilter

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// dial connects from src to ln within wait and reports whether the
// handshake completed.
func dial(t *testing.T, ln net.Listener, src string, wait time.Duration) bool {
	t.Helper()
	d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
			return false
		}
		t.Fatalf("dial from %s: %v", src, err)
	}
	c.Close()
	return true
}

// listen listens without multipath TCP, which takes no socket filter, as
// Go's listeners otherwise do.
func listen(t *testing.T, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(context.Background(), network, addr)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func attach(t *testing.T, ln net.Listener, prefixes ...string) {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range prefixes {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	held, _ := Choose(ps)
	prog := Program(SYNs, held)
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(rc, prog); err != nil {
		t.Fatal(err)
	}
}

// TestAttachDropsSYNs drives the kernel: a SYN from a prefix in the filter
// gets no answer (the dial times out), others connect, data flows on a
// connection accepted under the filter, and replacing the filter lets
// the dropped source in again.
func TestAttachDropsSYNs(t *testing.T) {
	ln, err := listen(t, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and echo one line per connection
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				c.Write(buf[:n])
			}()
		}
	}()
	if !dial(t, ln, "127.0.0.2", time.Second) {
		t.Fatalf("127.0.0.2 cannot connect before any filter")
	}
	attach(t, ln, "127.0.0.2/32", "127.0.1.0/24")
	for _, src := range []string{"127.0.0.2", "127.0.1.9"} {
		if dial(t, ln, src, 300*time.Millisecond) {
			t.Errorf("%s connected through a filter that drops it", src)
		}
	}
	// A source outside the filter connects, and its data packets, which
	// run through the filter its socket inherited, are not dropped.
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("127.0.0.3, not in the filter: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through the filter: %q, %v", buf, err)
	}
	attach(t, ln, "127.0.1.0/24")
	if !dial(t, ln, "127.0.0.2", time.Second) {
		t.Errorf("127.0.0.2 still dropped after the filter was replaced without it")
	}
	if dial(t, ln, "127.0.1.9", 300*time.Millisecond) {
		t.Errorf("127.0.1.9 connected through the replaced filter that still drops it")
	}
}

func TestAttachDropsIPv6SYNs(t *testing.T) {
	ln, err := listen(t, "tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	attach(t, ln, "::1/128")
	if dial(t, ln, "::1", 300*time.Millisecond) {
		t.Errorf("::1 connected through a filter that drops it")
	}
	attach(t, ln, "2001:db8::/32", "127.0.0.1/32")
	if !dial(t, ln, "::1", time.Second) {
		t.Errorf("::1 dropped by a filter without it")
	}
}

// TestAttachMultipathTCP documents why warden's TCP listeners turn
// multipath TCP off: the kernel takes no socket filter on an MPTCP socket,
// and Attach says so.
func TestAttachMultipathTCP(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, _ := ln.(*net.TCPListener).SyscallConn()
	prog := Program(SYNs, nil)
	// Without MPTCP in the kernel, Go falls back to plain TCP, which takes
	// the filter.
	if err := Attach(rc, prog); err != nil && !strings.Contains(err.Error(), "multipath") {
		t.Fatalf("Attach on an MPTCP listener: %v, want an error naming multipath TCP", err)
	}
}

// TestAttachDropsDatagrams attaches a Datagrams filter to real UDP
// sockets, IPv4 and dual-stack, and checks whose datagrams still arrive.
func TestAttachDropsDatagrams(t *testing.T) {
	ps := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.2/32"),
		netip.MustParsePrefix("127.0.5.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	held, _ := Choose(ps)
	for _, listen := range []string{"127.0.0.1:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", listen)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			rc, err := pc.(*net.UDPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			if err := Attach(rc, Program(Datagrams, held)); err != nil {
				t.Fatal(err)
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
			if len(got) != 2 || !got["127.0.0.3"] || !got["127.0.6.1"] {
				t.Fatalf("received from %v, want only 127.0.0.3 and 127.0.6.1", got)
			}
			if err := Attach(rc, Program(Datagrams, nil)); err != nil {
				t.Fatal(err)
			}
			send("127.0.0.2")
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err := pc.ReadFrom(buf); err != nil || string(buf[:n]) != "127.0.0.2" {
				t.Fatalf("after an empty filter: %q, %v", buf[:n], err)
			}
		})
	}
}
