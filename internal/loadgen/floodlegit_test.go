package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"testing"
	"time"
)

// slowTracker answers every announce after delay, counting connections
// and the requests that asked to close theirs.
type slowTracker struct {
	srv   *httptest.Server
	delay time.Duration

	mu         sync.Mutex // guards the fields below
	conns      int
	requests   int
	closeAsked int
}

func newSlowTracker(t *testing.T, delay time.Duration) *slowTracker {
	s := &slowTracker{delay: delay}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		if r.Close {
			s.closeAsked++
		}
		s.mu.Unlock()
		time.Sleep(s.delay)
		w.Write([]byte("d8:intervali1800e5:peers6:abcdefe"))
	}))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func legitOnlyConfig(url string) Config {
	cfg := testFloodConfig("")
	cfg.Protocol, cfg.UDP, cfg.HTTP = HTTP, "", url
	cfg.FloodRate = FloodOff
	cfg.LegitSources = netip.MustParsePrefix("127.6.0.1/32") // one source
	cfg.LegitRate = 20
	cfg.Warmup, cfg.Duration, cfg.Timeout = 0, 500*time.Millisecond, time.Second
	return cfg
}

// With LegitNewConn every join has a connection of its own, asks to close
// it, and does not wait for the joins before it: one source joining every
// 50 ms at a tracker that takes 200 ms per announce sees 200 ms per join.
// On one kept-alive connection the joins would queue, each waiting longer
// than the last.
func TestLegitNewConn(t *testing.T) {
	const delay = 200 * time.Millisecond
	s := newSlowTracker(t, delay)
	cfg := legitOnlyConfig(s.srv.URL + "/announce")
	cfg.LegitNewConn = true
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Flood.Legit
	checkJoins(t, l)
	if l.Joins != 10 || l.OK != 10 {
		t.Fatalf("legit %+v, want 10 joins, all OK", l)
	}
	if l.Latency.P50 < delay || l.Latency.P50 > delay+100*time.Millisecond {
		t.Errorf("join latency p50 %v; want about %v", l.Latency.P50, delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns != 10 || s.requests != 10 || s.closeAsked != 10 {
		t.Errorf("tracker saw %d connections, %d requests, %d asking to close; want 10 of each", s.conns, s.requests, s.closeAsked)
	}
	if c := rep.Class("connect"); c == nil || c.OK != 10 {
		t.Errorf("connect class %+v, want 10 connections made", c)
	}
	if !rep.Flood.LegitNewConn {
		t.Errorf("report does not say a connection per join")
	}
}

// The join's latency starts at its connect: with a tracker that answers at
// once, it is about the connect and exchange that the connect and
// announce classes measured apart, not more.
func TestLegitNewConnLatencyIsConnectAndExchange(t *testing.T) {
	s := newSlowTracker(t, 0)
	cfg := legitOnlyConfig(s.srv.URL + "/announce")
	cfg.LegitNewConn = true
	cfg.LegitRate = 100
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Flood.Legit
	conn, ann := rep.Class("connect"), rep.Class("announce/legit")
	if conn == nil || ann == nil || l.OK != l.Joins {
		t.Fatalf("classes %+v, legit %+v", rep.Classes, l)
	}
	if sum := conn.Latency.Mean + ann.Latency.Mean; l.Latency.Mean < sum || l.Latency.Mean > sum+2*time.Millisecond {
		t.Errorf("join latency mean %v, want connect %v + announce %v and little more", l.Latency.Mean, conn.Latency.Mean, ann.Latency.Mean)
	}
}

// TestMain lets the test binary serve as the legit process of
// Config.LegitRealtime.
func TestMain(m *testing.M) {
	if os.Getenv("WARDEN_LOADGEN_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := ServeLegitChild(ctx, os.Stdin, os.Stdout)
		stop()
		if err != nil {
			os.Stderr.WriteString("legit child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The legit class runs in a process of its own, every thread of it at the
// real-time priority asked for (ServeLegitChild checks before it
// reports), while this one floods; the report has both.
func TestLegitRealtime(t *testing.T) {
	if err := canRealtime(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("real-time priority not available under CI: %v", err)
		}
		t.Skipf("real-time priority not available: %v", err)
	}
	t.Setenv("WARDEN_LOADGEN_TEST_CHILD", "1")
	s := newRawServer(t, false, 0)
	s.reply = httpReply("d8:intervali1800e5:peers6:abcdefe") // the legit hashes' reply; the flood's is the same here
	cfg := testHTTPFloodConfig(s.url(), "pipeline", 4)
	cfg.FloodRate = 2000
	cfg.LegitSources = netip.MustParsePrefix("127.6.0.0/28")
	cfg.LegitRate, cfg.LegitNewConn, cfg.LegitRealtime = 100, true, 3
	cfg.ChildCommand = []string{os.Args[0]}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fr := rep.Flood
	checkJoins(t, fr.Legit)
	if fr.LegitPriority != 3 || fr.Legit.Joins != 30 || fr.Legit.OK != 30 || fr.LegitShared {
		t.Errorf("legit priority %d, %+v; want 3, 30 joins all OK", fr.LegitPriority, fr.Legit)
	}
	if fr.Flood == nil || fr.Flood.Sent == 0 || rep.Class("announce/legit") == nil {
		t.Errorf("flood %+v, classes %+v; want both classes", fr.Flood, rep.Classes)
	}
}

// A child that cannot start is an error, not a run without a legit class.
func TestLegitRealtimeChildFails(t *testing.T) {
	s := newRawServer(t, false, 0)
	cfg := testHTTPFloodConfig(s.url(), "pipeline", 1)
	cfg.LegitSources = netip.MustParsePrefix("127.6.0.0/28")
	cfg.LegitRate, cfg.LegitRealtime = 100, 3
	cfg.ChildCommand = []string{"/bin/false"}
	if _, err := Run(t.Context(), cfg); err == nil {
		t.Fatal("Run with a child that exits at once = nil error")
	}
}
