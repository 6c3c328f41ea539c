package sensor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// need fails the test under CI=true, where scripts/test.sh runs as root
// with every tool installed, and skips it elsewhere.
func need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: the sensor's tests need root, or CAP_NET_RAW, and the tools scripts/test.sh installs)", msg)
	}
	t.Skip(msg)
}

// newTestSensor opens a sensor reporting to a recorder, or skips (fails
// under CI) without CAP_NET_RAW.
func newTestSensor(t testing.TB, cfg Config) (*Sensor, *recorder) {
	t.Helper()
	cfg.Enabled = true
	s, err := New(cfg, discardLog())
	if errors.Is(err, fs.ErrPermission) {
		need(t, "no CAP_NET_RAW: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	s.ReportTo(rec)
	return s, rec
}

// run runs s until the test ends.
func run(t testing.TB, s *Sensor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// settle waits until get stops changing (two polls and a block timeout
// without news), so that every packet sent has been counted.
func settle(s *Sensor, get func() uint64) uint64 {
	quiet := 2*s.cfg.Poll + 2*blockTimeout*time.Millisecond
	last, since := get(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(s.cfg.Poll / 2)
		if n := get(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > quiet {
			break
		}
	}
	return last
}

// hpingSent matches hping3's summary: "N packets tramitted" (sic) in
// 3.0.0-alpha-2, "transmitted" elsewhere.
var hpingSent = regexp.MustCompile(`(\d+) packets tra[n]?s?mitted`)

// TestSYNFromSpoofedSource sends SYNs with hping3 from a forged loopback
// address to an HTTP server's port and checks that the sensor reports
// that address with as many SYNs as hping3 says it sent (within 10%),
// and nothing for other kinds or other ports.
func TestSYNFromSpoofedSource(t *testing.T) {
	hping, err := exec.LookPath("hping3")
	if err != nil {
		need(t, "hping3 not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	s, rec := newTestSensor(t, DefaultConfig())
	if err := s.SetPorts(Ports{TCP: []uint16{port}}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	before := s.Stats()

	spoofed := netip.MustParseAddr("127.9.9.9")
	const count = 5000
	out, err := exec.Command(hping, "-S", "-a", spoofed.String(), "-p", strconv.Itoa(int(port)),
		"-i", "u100", "-c", strconv.Itoa(count), "127.0.0.1").CombinedOutput()
	m := hpingSent.FindSubmatch(out)
	if m == nil {
		t.Fatalf("hping3: %v, no count of packets sent in:\n%s", err, out)
	}
	sent, _ := strconv.ParseUint(string(m[1]), 10, 64)
	if sent < count/2 {
		t.Fatalf("hping3 sent only %d of %d:\n%s", sent, count, out)
	}
	got := settle(s, func() uint64 { return rec.get(spoofed, SYN) })
	if diff := float64(got) - float64(sent); diff > 0.1*float64(sent) || -diff > 0.1*float64(sent) {
		t.Fatalf("sensor counted %d SYNs from %v, hping3 sent %d; all counts: %v", got, spoofed, sent, rec)
	}
	if !SYN.Spoofable() {
		t.Error("SYN counts are not marked spoofable")
	}
	if n := rec.get(spoofed, KernelDropped); n != 0 {
		t.Errorf("%d SYNs counted as kernel drops", n)
	}
	st := s.Stats()
	if st.SYN-before.SYN != got || st.RingDrops != 0 || st.Malformed != 0 {
		t.Errorf("Stats: %+v, want SYN %d more than %d, no drops, nothing malformed", st, got, before.SYN)
	}
	if st.TCP == nil {
		t.Error("Stats: no kernel TCP counters")
	}
	t.Logf("hping3 sent %d, sensor counted %d; %+v; kernel %+v", sent, got, st, *st.TCP)
}

// TestSYNFilter opens real connections from several addresses to a
// counted and an uncounted port: only the SYNs to the counted port are
// reported, one per connection, and the handshake's other segments
// (SYN-ACK, ACK) are not.
func TestSYNFilter(t *testing.T) {
	counted, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer counted.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	v6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer v6.Close()
	port := func(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }

	s, rec := newTestSensor(t, DefaultConfig())
	if err := s.SetPorts(Ports{TCP: []uint16{port(counted), port(v6)}}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	dial := func(from string, to net.Listener, times int) {
		for range times {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			c, err := d.Dial("tcp", to.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
	dial("127.0.0.7", counted, 3)
	dial("127.0.0.8", counted, 1)
	dial("127.0.0.9", other, 5)
	dial("::1", v6, 2)
	want := map[string]uint64{"127.0.0.7": 3, "127.0.0.8": 1, "127.0.0.9": 0, "::1": 2}
	settle(s, func() uint64 { return s.Stats().SYN })
	for src, n := range want {
		if got := rec.get(netip.MustParseAddr(src), SYN); got != n {
			t.Errorf("SYNs from %s: %d, want %d (all: %v)", src, got, n, rec)
		}
	}
}

// TestKernelDropCount bans a prefix on a UDP socket's filter the way the
// UDP frontend does and checks that datagrams from it, and only from it,
// are counted, GSO super-packets one per datagram.
func TestKernelDropCount(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	s, rec := newTestSensor(t, DefaultConfig())
	if err := s.SetPorts(Ports{UDP: []uint16{port}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBanned([]netip.Prefix{netip.MustParsePrefix("127.1.0.0/24"), netip.MustParsePrefix("2001:db8::/32")}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	send := func(from string, segments, size int) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if segments > 1 {
			if err := setGSO(c, size); err != nil {
				t.Fatalf("UDP_SEGMENT: %v", err)
			}
		}
		if _, err := c.Write(make([]byte, segments*size-size/2)); err != nil {
			t.Fatal(err)
		}
	}
	send("127.1.0.1", 1, 100)
	send("127.1.0.1", 1, 100)
	send("127.1.0.2", 11, 100) // 10.5 datagrams' worth: 11 datagrams
	send("127.2.0.1", 1, 100)  // not banned
	settle(s, func() uint64 { return s.Stats().KernelDropped })
	want := map[string]uint64{"127.1.0.1": 2, "127.1.0.2": 11, "127.2.0.1": 0}
	for src, n := range want {
		if got := rec.get(netip.MustParseAddr(src), KernelDropped); got != n {
			t.Errorf("datagrams from %s: %d, want %d (all: %v)", src, got, n, rec)
		}
	}
}

// TestLifecycle: Run ends when its context does and hands over what it
// counted; Close is idempotent, ends Run, and makes later calls fail
// cleanly rather than touch closed sockets.
func TestLifecycle(t *testing.T) {
	t.Run("close before run", func(t *testing.T) {
		s, _ := newTestSensor(t, DefaultConfig())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Run(context.Background()); err == nil {
			t.Fatal("Run after Close: no error")
		}
		if err := s.SetBanned(nil); err == nil {
			t.Fatal("SetBanned after Close: no error")
		}
		_ = s.Stats()
	})
	t.Run("close while running", func(t *testing.T) {
		s, _ := newTestSensor(t, DefaultConfig())
		done := make(chan error, 1)
		go func() { done <- s.Run(context.Background()) }()
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { s.Close() })
		}
		wg.Wait()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Close took %v", d)
		}
	})
	t.Run("context", func(t *testing.T) {
		s, rec := newTestSensor(t, Config{Poll: 10 * time.Second, RingBytes: minRingBytes, Sources: 64})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if err := s.SetPorts(Ports{TCP: []uint16{uint16(ln.Addr().(*net.TCPAddr).Port)}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		for s.Stats().SYN == 0 {
			time.Sleep(5 * time.Millisecond) // the block times out in 10 ms
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Second):
			t.Fatal("Run did not end with its context")
		}
		// The poll is 10 s away: what was counted is handed over at the end.
		if got := rec.get(netip.MustParseAddr("127.0.0.1"), SYN); got != 1 {
			t.Fatalf("handed over %d SYNs at the end, want 1 (%v)", got, rec)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNewWithoutCapability runs this test binary again without
// CAP_NET_RAW (setpriv drops it from every set) and checks that New
// fails with an error that says what is missing.
func TestNewWithoutCapability(t *testing.T) {
	if os.Getenv("SENSOR_TEST_NO_CAP") == "1" {
		_, err := New(Config{Enabled: true, RingBytes: minRingBytes, Sources: 64, Poll: time.Second}, discardLog())
		fmt.Printf("error: %v\nis permission: %v\n", err, errors.Is(err, fs.ErrPermission))
		return
	}
	if os.Geteuid() != 0 {
		need(t, "not root: cannot drop a capability")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		need(t, "setpriv (util-linux) not installed")
	}
	cmd := exec.Command(setpriv, "--inh-caps=-net_raw", "--ambient-caps=-net_raw", "--bounding-set=-net_raw",
		os.Args[0], "-test.run=^TestNewWithoutCapability$", "-test.v")
	cmd.Env = append(os.Environ(), "SENSOR_TEST_NO_CAP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	text := string(out)
	if !strings.Contains(text, "is permission: true") || !strings.Contains(text, "CAP_NET_RAW") {
		t.Fatalf("New without CAP_NET_RAW:\n%s", text)
	}
}

// setGSO makes c send each write as datagrams of size bytes, handed to
// the kernel as one GSO packet.
func setGSO(c *net.UDPConn, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, size)
	}); err != nil {
		return err
	}
	return serr
}
