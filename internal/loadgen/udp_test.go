package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
)

func reply(action, txid uint32, rest ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, action)
	b = binary.BigEndian.AppendUint32(b, txid)
	for _, r := range rest {
		b = append(b, r...)
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// TestBadFor checks that each fault of a reply is counted under the name
// the report has always used for it.
func TestBadFor(t *testing.T) {
	for f, want := range map[bep15.Fault]string{
		bep15.FaultShort:    "short",
		bep15.FaultAction:   "wrong action",
		bep15.FaultLength:   "wrong length",
		bep15.FaultInterval: "bad interval",
		bep15.FaultPeers:    "too many peers",
	} {
		if got := badFor(f).String(); got != want {
			t.Errorf("badFor(%v) = %q, want %q", f, got, want)
		}
	}
}

// newTestUDPWorker returns a worker with no socket, for exercising the
// reply logic directly.
func newTestUDPWorker(t *testing.T, window int) *udpWorker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.UDP, cfg.Window, cfg.Workers = "127.0.0.1:1", window, 1
	pop := &population{hashes: GenerateHashes(4), peersPerTorrent: 2, workers: 1}
	rs := newRunState(&cfg, pop)
	rs.start()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w, err := newUDPWorker(0, rs, c, false)
	if err != nil {
		t.Fatal(err)
	}
	w.hasConn, w.connID = true, 42
	return w
}

func TestUDPWorkerMatching(t *testing.T) {
	w := newTestUDPWorker(t, 4)
	send := func(now int64) uint32 {
		idx := w.free[len(w.free)-1]
		w.free = w.free[:len(w.free)-1]
		b := w.build(nil, idx, now, true)
		w.stats.classes[w.slots[idx].class].sent++
		return binary.BigEndian.Uint32(b[12:])
	}
	ok := reply(1, 0, u32(1800), u32(0), u32(0))
	withTx := func(b []byte, txid uint32) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[4:], txid)
		return b
	}
	st := &w.stats.classes[classAnnounceLegit]

	tx := send(0)
	w.handle(withTx(ok, tx), 1000)
	if st.ok != 1 || w.inflight != 0 {
		t.Fatalf("matching reply: ok=%d inflight=%d, want 1, 0", st.ok, w.inflight)
	}
	w.handle(withTx(ok, tx), 1000) // duplicate
	w.handle(withTx(ok, tx^0x80000000), 1000)
	w.handle([]byte{0, 0, 0, 1, 0}, 1000)
	if w.stats.unmatched[badTxID] != 2 || w.stats.unmatched[badShort] != 1 {
		t.Errorf("unmatched = %v, want 2 unknown transaction IDs and 1 short", w.stats.unmatched)
	}

	tx = send(0)
	w.handle(withTx(reply(2, 0, make([]byte, 12)), tx), 1000)
	tx = send(0)
	w.handle(reply(1, tx), 1000) // header only
	tx = send(0)
	w.handle(withTx(reply(3, 0, []byte("unregistered torrent")), tx), 1000)
	if st.badReasons[badAction] != 1 || st.badReasons[badShort] != 1 || st.bad != 2 {
		t.Errorf("bad = %d %v, want 1 wrong action and 1 short", st.bad, st.badReasons)
	}
	if st.failures != 1 || st.failMsgs.top(1)[0].Message != "unregistered torrent" || !w.suspect {
		t.Errorf("failures = %d %v, suspect %v; want 1 \"unregistered torrent\" and a suspect connection ID", st.failures, st.failMsgs.top(1), w.suspect)
	}

	// A request times out; its late reply is counted as late, not unmatched.
	tx = send(0)
	w.expire(w.run.timeout + 1)
	if st.timeouts != 1 || w.inflight != 0 {
		t.Fatalf("after expire: timeouts=%d inflight=%d, want 1, 0", st.timeouts, w.inflight)
	}
	w.handle(withTx(ok, tx), w.run.timeout+2)
	if st.late != 1 || w.stats.unmatched[badTxID] != 2 {
		t.Errorf("late reply: late=%d unmatched=%d, want 1, 2", st.late, w.stats.unmatched[badTxID])
	}
	// A reply past the timeout that is handled before expire ran.
	tx = send(0)
	w.handle(withTx(ok, tx), w.run.timeout+1)
	if st.timeouts != 2 || st.late != 2 {
		t.Errorf("reply after timeout: timeouts=%d late=%d, want 2, 2", st.timeouts, st.late)
	}
	if st.sent != st.ok+st.failures+st.timeouts+st.bad {
		t.Errorf("sent %d != ok %d + failures %d + timeouts %d + bad %d", st.sent, st.ok, st.failures, st.timeouts, st.bad)
	}
	// Slot reuse: the transaction ID of the slot's next request differs.
	a, b := send(0), send(0)
	if a == tx || b == tx || a == b {
		t.Errorf("transaction IDs repeat: %x %x %x", tx, a, b)
	}
}

func TestUDPWorkerHotPathDoesNotAllocate(t *testing.T) {
	w := newTestUDPWorker(t, 8)
	w.run.cfg.UnknownFraction = 0.5
	buf := make([]byte, 0, 128)
	rep := reply(1, 0, u32(1800), u32(0), u32(0), make([]byte, 60))
	allocs := testing.AllocsPerRun(1000, func() {
		idx := w.free[len(w.free)-1]
		w.free = w.free[:len(w.free)-1]
		b := w.build(buf[:0], idx, 1, true)
		copy(rep[4:8], b[12:16])
		w.handle(rep, 2)
	})
	if allocs != 0 {
		t.Errorf("build+handle allocate %v times per request, want 0", allocs)
	}
}

// fakeUDP is a minimal BEP 15 tracker on 127.0.0.1:0 whose replies a test
// can spoil. It stops when the test ends.
type fakeUDP struct {
	conn    *net.UDPConn
	spoil   func(req, reply []byte) [][]byte // nil: send reply as is
	mu      sync.Mutex
	sources map[netip.Addr]bool // guarded by mu
	connIDs atomic.Int64
	n       atomic.Int64
}

func newFakeUDP(t *testing.T, spoil func(req, reply []byte) [][]byte) *fakeUDP {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	f := &fakeUDP{conn: c, spoil: spoil, sources: map[netip.Addr]bool{}}
	done := make(chan struct{})
	go f.serve(done)
	t.Cleanup(func() { c.Close(); <-done })
	return f
}

func (f *fakeUDP) addr() string { return f.conn.LocalAddr().String() }

func (f *fakeUDP) serve(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 2048)
	for {
		n, src, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		f.n.Add(1)
		f.mu.Lock()
		f.sources[src.Addr()] = true
		f.mu.Unlock()
		req := buf[:n]
		h, ok := bep15.ParseHeader(req)
		if !ok {
			continue
		}
		var r []byte
		switch h.Action {
		case bep15.ActionConnect:
			f.connIDs.Add(1)
			r = bep15.AppendConnectReply(nil, h.TxID, 42)
		case bep15.ActionAnnounce:
			if h.ConnID != 42 {
				continue // like opentracker: silence for a bad connection ID
			}
			r = bep15.AppendAnnounceReply(nil, h.TxID, bep15.AnnounceReply{Interval: 1800, Leechers: 1, Seeders: 2}, make([]byte, 12))
		case bep15.ActionScrape:
			r = bep15.AppendScrapeReply(nil, h.TxID, make([]bittorrent.Scrape, (len(req)-bep15.HeaderLen)/bep15.HashLen))
		}
		replies := [][]byte{r}
		if f.spoil != nil {
			replies = f.spoil(req, r)
		}
		for _, r := range replies {
			f.conn.WriteToUDPAddrPort(r, src)
		}
	}
}

// lossTimeout is the Timeout of tests in which requests go unanswered.
const lossTimeout = 150 * time.Millisecond

func testUDPConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.UDP = addr
	cfg.Workers, cfg.Window = 4, 8
	cfg.Torrents, cfg.PeersPerTorrent = 10, 3
	// A generous timeout: tests run on loaded machines, and only tests
	// about losses shorten it (see lossTimeout).
	cfg.Warmup, cfg.Duration, cfg.Timeout = 0, 300*time.Millisecond, 2*time.Second
	cfg.Rate = 4000
	return cfg
}

// checkAccounting checks that every request sent is counted exactly once.
func checkAccounting(t *testing.T, rep Report) {
	t.Helper()
	for _, c := range rep.Classes {
		if c.Sent != c.OK+c.Failures+c.Timeouts+c.Bad {
			t.Errorf("%s: sent %d != ok %d + failures %d + timeouts %d + bad %d", c.Name, c.Sent, c.OK, c.Failures, c.Timeouts, c.Bad)
		}
	}
}

func TestRunUDP(t *testing.T) {
	for _, noGSO := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoGSO=%v", noGSO), func(t *testing.T) { testRunUDP(t, noGSO) })
	}
}

func testRunUDP(t *testing.T, noGSO bool) {
	f := newFakeUDP(t, nil)
	cfg := testUDPConfig(f.addr())
	cfg.Scenario, cfg.ScrapeHashes = ScenarioMixed, 3
	cfg.NoGSO = noGSO
	cfg.Rate = 0 // as fast as possible, for full batches
	cfg.MaxRequests = 5000
	cfg.Sources = netip.MustParsePrefix("127.3.0.0/24")
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > cfg.Duration+cfg.Timeout {
		t.Errorf("Run took %v, want at most %v", d, cfg.Duration+cfg.Timeout)
	}
	checkAccounting(t, rep)
	ann, scr, conn := rep.Class("announce/legit"), rep.Class("scrape/legit"), rep.Class("connect")
	if ann == nil || scr == nil || conn == nil {
		t.Fatalf("classes = %+v, want connect, announce/legit and scrape/legit", rep.Classes)
	}
	if ann.OK == 0 || ann.OK != ann.Sent || scr.OK != scr.Sent || conn.OK != uint64(cfg.Workers) {
		t.Errorf("report = %+v, want every request answered OK and one connect per worker", rep.Classes)
	}
	if tot := rep.Total(); tot.Sent != uint64(cfg.MaxRequests) && rep.StoppedBy != "duration" {
		t.Errorf("sent %d requests, stopped by %s; want %d or the end of the duration", tot.Sent, rep.StoppedBy, cfg.MaxRequests)
	}
	if ann.Latency.P50 <= 0 || ann.Latency.Max < ann.Latency.P99 || ann.RepliesPerSec <= 0 {
		t.Errorf("latency %+v, replies/s %v", ann.Latency, ann.RepliesPerSec)
	}
	f.mu.Lock()
	nsrc := len(f.sources)
	f.mu.Unlock()
	if nsrc != cfg.Workers || rep.Sources != cfg.Workers {
		t.Errorf("server saw %d sources, report says %d; want %d", nsrc, rep.Sources, cfg.Workers)
	}
	if len(rep.Unmatched) != 0 || rep.IOErrors != 0 {
		t.Errorf("unmatched %v, io errors %d; want none", rep.Unmatched, rep.IOErrors)
	}
}

func TestRunUDPSpoiled(t *testing.T) {
	announce := func(req []byte) bool {
		h, _ := bep15.ParseHeader(req)
		return h.Action == bep15.ActionAnnounce
	}
	tests := []struct {
		name  string
		long  bool // run for longer than refreshEvery
		lossy bool // some requests get no reply
		spoil func(req, reply []byte) [][]byte
		check func(t *testing.T, rep Report, ann *ClassReport)
	}{
		{
			name:  "wrong transaction ID",
			lossy: true,
			spoil: func(req, r []byte) [][]byte {
				if announce(req) {
					r[7] ^= 0xff
				}
				return [][]byte{r}
			},
			check: func(t *testing.T, rep Report, ann *ClassReport) {
				if ann.OK != 0 || ann.Timeouts == 0 || len(rep.Unmatched) == 0 || rep.Unmatched[0].Message != "unknown transaction id" {
					t.Errorf("ok %d timeouts %d unmatched %v; want no OK, timeouts, unmatched replies", ann.OK, ann.Timeouts, rep.Unmatched)
				}
			},
		},
		{
			name: "short",
			spoil: func(req, r []byte) [][]byte {
				if announce(req) {
					return [][]byte{r[:8]}
				}
				return [][]byte{r}
			},
			check: func(t *testing.T, rep Report, ann *ClassReport) {
				if ann.OK != 0 || ann.Bad != ann.Sent || ann.BadReasons[0].Message != "short" {
					t.Errorf("ok %d bad %d of %d %v; want all bad, short", ann.OK, ann.Bad, ann.Sent, ann.BadReasons)
				}
			},
		},
		{
			name:  "tiny",
			lossy: true,
			spoil: func(req, r []byte) [][]byte {
				if announce(req) {
					return [][]byte{r[:5]}
				}
				return [][]byte{r}
			},
			check: func(t *testing.T, rep Report, ann *ClassReport) {
				if ann.OK != 0 || ann.Timeouts != ann.Sent || len(rep.Unmatched) == 0 || rep.Unmatched[0].Message != "short" {
					t.Errorf("ok %d timeouts %d of %d, unmatched %v; want all timed out and short unmatched replies", ann.OK, ann.Timeouts, ann.Sent, rep.Unmatched)
				}
			},
		},
		{
			name: "odd length",
			spoil: func(req, r []byte) [][]byte {
				if announce(req) {
					return [][]byte{append(r, 1)}
				}
				return [][]byte{r}
			},
			check: func(t *testing.T, rep Report, ann *ClassReport) {
				if ann.Bad != ann.Sent || ann.BadReasons[0].Message != "wrong length" {
					t.Errorf("bad %d of %d %v; want all bad, wrong length", ann.Bad, ann.Sent, ann.BadReasons)
				}
			},
		},
		{
			name: "error replies",
			long: true,
			spoil: func(req, r []byte) [][]byte {
				if announce(req) {
					return [][]byte{reply(3, binary.BigEndian.Uint32(r[4:]), []byte("torrent not registered"))}
				}
				return [][]byte{r}
			},
			check: func(t *testing.T, rep Report, ann *ClassReport) {
				if ann.Failures != ann.Sent || len(ann.TopFailures) != 1 || ann.TopFailures[0].Message != "torrent not registered" {
					t.Errorf("failures %d of %d %v; want all \"torrent not registered\"", ann.Failures, ann.Sent, ann.TopFailures)
				}
				if c := rep.Class("connect"); c.Sent <= 4 {
					t.Errorf("connects: %+v; want connection IDs refreshed after errors", c)
				}
			},
		},
		{
			name:  "every other lost, duplicates",
			lossy: true,
			spoil: func() func(req, r []byte) [][]byte {
				var n atomic.Int64
				return func(req, r []byte) [][]byte {
					if !announce(req) {
						return [][]byte{r}
					}
					switch n.Add(1) % 3 {
					case 0:
						return nil
					case 1:
						return [][]byte{r, r}
					}
					return [][]byte{r}
				}
			}(),
			check: func(t *testing.T, rep Report, ann *ClassReport) {
				if ann.OK == 0 || ann.Timeouts == 0 || len(rep.Unmatched) == 0 {
					t.Errorf("ok %d timeouts %d unmatched %v; want some of each", ann.OK, ann.Timeouts, rep.Unmatched)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeUDP(t, tt.spoil)
			cfg := testUDPConfig(f.addr())
			cfg.Duration = 250 * time.Millisecond
			if tt.long {
				cfg.Duration = time.Duration(refreshEvery) + 300*time.Millisecond
			}
			if tt.lossy {
				cfg.Timeout = lossTimeout
			}
			rep, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, rep)
			ann := rep.Class("announce/legit")
			if ann == nil || ann.Sent == 0 {
				t.Fatalf("no announces sent: %+v", rep.Classes)
			}
			tt.check(t, rep, ann)
		})
	}
}

func TestRunUDPRate(t *testing.T) {
	f := newFakeUDP(t, nil)
	cfg := testUDPConfig(f.addr())
	cfg.Rate, cfg.Duration = 4000, 500*time.Millisecond
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The rate is a ceiling; a starved test machine may send fewer.
	if sent := rep.Total().Sent; sent == 0 || float64(sent) > 1.2*cfg.Rate*cfg.Duration.Seconds()+float64(cfg.Workers) {
		t.Errorf("sent %d requests in %v at %v/s, want at most about %v", sent, cfg.Duration, cfg.Rate, cfg.Rate*cfg.Duration.Seconds())
	}
}

func TestRunUDPBudgetAndCancel(t *testing.T) {
	f := newFakeUDP(t, nil)
	cfg := testUDPConfig(f.addr())
	cfg.Rate, cfg.MaxRequests, cfg.Duration = 0, 500, 10*time.Second
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.StoppedBy != "max-requests" || rep.Total().Sent != 500 || time.Since(start) > 5*time.Second {
		t.Errorf("stopped by %s after %d requests and %v; want max-requests, 500, quickly", rep.StoppedBy, rep.Total().Sent, time.Since(start))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	cfg.MaxRequests = 1 << 40
	cfg.Rate = 1000
	start = time.Now()
	rep, err = Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.StoppedBy != "canceled" || time.Since(start) > time.Second {
		t.Errorf("stopped by %s after %v; want canceled within about 300ms", rep.StoppedBy, time.Since(start))
	}
}

func TestRunUDPTargetDown(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close() // nothing listens there now
	cfg := testUDPConfig(addr)
	cfg.Duration, cfg.Timeout = 200*time.Millisecond, lossTimeout
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Class("connect"); c == nil || c.OK != 0 || c.Timeouts == 0 {
		t.Errorf("connect = %+v, want only timeouts", c)
	}
	if rep.Class("announce/legit") != nil {
		t.Errorf("announces sent without a connection ID: %+v", rep.Classes)
	}
}
