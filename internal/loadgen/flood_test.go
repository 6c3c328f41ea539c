package loadgen

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
)

// floodFake wraps fakeUDP into a tracker that knows the legit hashes: it
// answers their announces, refuses unknown ones, and records when each
// legit announce came and from where.
type floodFake struct {
	*fakeUDP
	legit map[bittorrent.InfoHash]bool

	mu          sync.Mutex          // guards the fields below
	legitK      map[int64]time.Time // arrival of each legit announce, by join number
	legitSrcs   map[netip.Addr]bool
	floodSrcs   map[netip.Addr]bool
	lengths     map[int]int // of datagrams that are not announces or connects
	legitEvents map[uint32]int
}

// unknownReply is the fake's answer to an announce for an unknown hash,
// chosen by the hash's first byte so a test knows the proportions: a
// quarter rate limited, a quarter accepted, half not registered.
func unknownReply(ih []byte, txid uint32) []byte {
	switch {
	case ih[0] < 0x40:
		return bep15.AppendError(nil, txid, "slow down\x00")
	case ih[0] < 0x80:
		return bep15.AppendAnnounceReply(nil, txid, bep15.AnnounceReply{Interval: 1800, Seeders: 1}, nil)
	}
	return bep15.AppendError(nil, txid, "torrent not registered with this tracker")
}

func newFloodFake(t *testing.T, hashes []bittorrent.InfoHash) *floodFake {
	f := &floodFake{
		legit:     map[bittorrent.InfoHash]bool{},
		legitSrcs: map[netip.Addr]bool{}, floodSrcs: map[netip.Addr]bool{},
		lengths: map[int]int{}, legitEvents: map[uint32]int{}, legitK: map[int64]time.Time{},
	}
	for _, h := range hashes {
		f.legit[h] = true
	}
	f.fakeUDP = newFakeUDP(t, func(req, r []byte) [][]byte {
		if r == nil { // neither connect, announce nor scrape: no reply
			f.mu.Lock()
			f.lengths[len(req)]++
			f.mu.Unlock()
			return nil
		}
		h, _ := bep15.ParseHeader(req)
		var a bep15.Announce
		if _, ok := bep15.ParseAnnounce(req, &a); h.Action != bep15.ActionAnnounce || !ok || len(req) != bep15.AnnounceLen {
			f.mu.Lock()
			if h.Action != bep15.ActionConnect {
				f.lengths[len(req)]++
			}
			f.mu.Unlock()
			return [][]byte{r}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.legit[a.InfoHash] {
			// The join number is in the peer ID, after peerIDPrefix.
			k, _ := strconv.ParseInt(string(a.PeerID[len(peerIDPrefix):]), 10, 64)
			f.legitK[k] = time.Now()
			f.legitEvents[a.Event]++
			return [][]byte{r}
		}
		return [][]byte{unknownReply(a.InfoHash[:], h.TxID)}
	})
	return f
}

// record notes the source of every datagram: the fake's own sources map
// does not say which class sent it, so tests compare it with the prefixes.
func (f *floodFake) sourcesIn(p netip.Prefix) (in, out int) {
	f.fakeUDP.mu.Lock()
	defer f.fakeUDP.mu.Unlock()
	for a := range f.fakeUDP.sources {
		if p.Contains(a) {
			in++
		} else {
			out++
		}
	}
	return in, out
}

func testFloodConfig(udp string) Config {
	cfg := DefaultConfig()
	cfg.Scenario = ScenarioFlood
	cfg.UDP = udp
	cfg.Torrents = 20
	cfg.LegitSources = netip.MustParsePrefix("127.6.0.0/28") // 14 sources
	cfg.FloodSources = netip.MustParsePrefix("127.7.0.0/29") // 6 sources
	cfg.LegitRate = 500
	cfg.FloodRate = 2000
	cfg.Warmup, cfg.Duration, cfg.Timeout = 100*time.Millisecond, time.Second, 2*time.Second
	return cfg
}

// checkJoins checks that every join is counted once.
func checkJoins(t *testing.T, l LegitReport) {
	t.Helper()
	if l.Joins != l.OK+l.Failures+l.Timeouts+l.Bad+l.NotSent {
		t.Errorf("joins %d != ok %d + failures %d + timeouts %d + bad %d + not sent %d", l.Joins, l.OK, l.Failures, l.Timeouts, l.Bad, l.NotSent)
	}
}

func TestRunFloodUDP(t *testing.T) {
	hashes := GenerateHashes(20)
	f := newFloodFake(t, hashes)
	cfg := testFloodConfig(f.addr())
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > cfg.Warmup+cfg.Duration+cfg.Timeout+time.Second {
		t.Errorf("Run took %v", d)
	}
	checkAccounting(t, rep)
	fr := rep.Flood
	if fr == nil || fr.Flood == nil {
		t.Fatalf("no flood report: %+v", rep)
	}
	l := fr.Legit
	checkJoins(t, l)
	wantJoins := cfg.LegitRate * cfg.Duration.Seconds()
	if float64(l.Joins) < 0.97*wantJoins || float64(l.Joins) > 1.03*wantJoins+1 || l.OK != l.Joins || l.SuccessPct != 100 {
		t.Errorf("legit = %+v, want %v joins, all OK", l, wantJoins)
	}
	if l.Latency.P50 <= 0 || l.Latency.Max < l.Latency.P99 {
		t.Errorf("legit latency %+v", l.Latency)
	}
	if fr.LegitSources != 14 || fr.FloodSources != 6 {
		t.Errorf("sources legit %d flood %d, want 14 and 6", fr.LegitSources, fr.FloodSources)
	}
	f.mu.Lock()
	events := f.legitEvents
	f.mu.Unlock()
	if len(events) != 1 || events[uint32(bittorrent.EventStarted)] == 0 {
		t.Errorf("legit announce events %v, want only started", events)
	}

	// The flood: a connect per source, then the fake's three kinds of reply.
	fl := fr.Flood
	if fl.Connects != 6 || fl.ConnectsOK != 6 {
		t.Errorf("flood connects %d, answered %d; want 6, 6", fl.Connects, fl.ConnectsOK)
	}
	wantSent := cfg.FloodRate * cfg.Duration.Seconds()
	if float64(fl.Sent) < 0.9*wantSent || float64(fl.Sent) > 1.05*wantSent+udpBatch {
		t.Errorf("flood sent %d, want about %v", fl.Sent, wantSent)
	}
	kinds := map[string]uint64{}
	for _, k := range fl.Kinds {
		kinds[k.Kind] = k.Count
	}
	near := func(got uint64, frac float64) bool {
		want := frac * float64(fl.Replies)
		return float64(got) > 0.75*want && float64(got) < 1.25*want
	}
	if fl.Replies == 0 || fl.Replies > fl.Sent || !near(kinds["not registered"], 0.5) || !near(kinds["error (other)"], 0.25) ||
		!near(kinds["announce"], 0.25) || kinds["other"] != 0 || kinds["none"] != fl.Sent-fl.Replies {
		t.Errorf("flood replies %d of %d: %v; want half not registered, a quarter each error and announce", fl.Replies, fl.Sent, kinds)
	}
	if len(fl.TopMessages) < 2 || !strings.Contains(fl.TopMessages[0].Message, "not registered") {
		t.Errorf("top messages %v", fl.TopMessages)
	}
	// Every source was used, and nothing came from elsewhere.
	legitIn, _ := f.sourcesIn(cfg.LegitSources)
	floodIn, _ := f.sourcesIn(cfg.FloodSources)
	if _, other := f.sourcesIn(netip.MustParsePrefix("127.6.0.0/15")); legitIn != 14 || floodIn != 6 || other != 0 {
		t.Errorf("fake saw %d legit and %d flood sources and %d others; want 14, 6, 0", legitIn, floodIn, other)
	}

	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"100.00%", "not registered", "connect", "announce/legit"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := rep.WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"success_pct": 100`) {
		t.Errorf("JSON report: %v\n%s", err, b.String())
	}
}

// The legit class keeps its rate, evenly, beside a flood; the tracker sees
// it. The flood is one the fake can answer, or arrivals would say more
// about the fake than about the pacing. Other tests or builds may take the
// machine's CPU for a while (go test runs packages in parallel, and -race
// slows the pacer), so a run may be tried three times and an announce
// counts as off schedule only past 100 ms: the rate is the strict check.
func TestRunFloodLegitPacing(t *testing.T) {
	var problems []string
	for attempt := range 3 {
		problems = checkLegitPacing(t)
		if len(problems) == 0 {
			return
		}
		t.Logf("attempt %d: %s", attempt+1, strings.Join(problems, "; "))
	}
	t.Error(strings.Join(problems, "; "))
}

func checkLegitPacing(t *testing.T) (problems []string) {
	f := newFloodFake(t, GenerateHashes(20))
	cfg := testFloodConfig(f.addr())
	cfg.LegitRate, cfg.FloodRate = 1000, 5000
	cfg.Warmup, cfg.Duration = 0, 1200*time.Millisecond
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Flood.Legit
	checkJoins(t, l)
	want := cfg.LegitRate * cfg.Duration.Seconds()
	if float64(l.Joins) != want || l.OK != l.Joins {
		problems = append(problems, fmt.Sprintf("legit %+v; want %v joins, all OK", l, want))
	}
	f.mu.Lock()
	arrivals := maps.Clone(f.legitK)
	f.mu.Unlock()
	if len(arrivals) < int(0.97*want) {
		return append(problems, fmt.Sprintf("the fake got %d legit announces, want %v", len(arrivals), want))
	}
	// Join k is due at k/rate. Fit arrival = a + k·b over the middle 80%
	// of the joins: 1/b is the rate the tracker saw, and the residuals
	// say how evenly the joins came.
	var ks []int64
	for k := range arrivals {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	ks = ks[len(ks)/10 : len(ks)*9/10]
	var sx, sy, sxx, sxy float64
	t0 := arrivals[ks[0]]
	for _, k := range ks {
		x, y := float64(k), float64(arrivals[k].Sub(t0))
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(ks))
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	icpt := (sy - slope*sx) / n
	rate := 1e9 / slope
	late := 0
	for _, k := range ks {
		if r := float64(arrivals[k].Sub(t0)) - (icpt + slope*float64(k)); math.Abs(r) > float64(100*time.Millisecond) {
			late++
		}
	}
	t.Logf("the fake saw legit announces at %.1f/s, %d of %d more than 100 ms off the line; pacer lag p99 %v, max %v",
		rate, late, len(ks), l.LagP99, l.LagMax)
	if rate < 0.97*cfg.LegitRate || rate > 1.03*cfg.LegitRate {
		problems = append(problems, fmt.Sprintf("the fake saw legit announces at %.1f/s, want %v within 3%%", rate, cfg.LegitRate))
	}
	if late > len(ks)/20 {
		problems = append(problems, fmt.Sprintf("%d of %d legit announces more than 100 ms off schedule, want at most 5%%", late, len(ks)))
	}
	return problems
}

// Against a flood as fast as the generator can send, the legit class
// still starts every join due and counts each once. (The fake, in this
// process, competes with the generator for the CPU and is swamped, so
// little else holds here; the pacer's lag and the success rate are for
// runs against a tracker of its own.)
func TestRunFloodMax(t *testing.T) {
	f := newFloodFake(t, GenerateHashes(20))
	cfg := testFloodConfig(f.addr())
	cfg.LegitRate, cfg.FloodRate = 1000, 0
	cfg.Warmup, cfg.Duration, cfg.Timeout = 0, 500*time.Millisecond, 300*time.Millisecond
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, rep)
	l := rep.Flood.Legit
	checkJoins(t, l)
	if want := cfg.LegitRate * cfg.Duration.Seconds(); float64(l.Joins) != want {
		t.Errorf("legit %+v; want %v joins", l, want)
	}
	if fl := rep.Flood.Flood; fl.Sent == 0 || fl.Replies > fl.Sent {
		t.Errorf("flood sent %d, replies %d", fl.Sent, fl.Replies)
	}
}

func TestRunFloodModes(t *testing.T) {
	for _, mode := range []FloodMode{FloodGarbage, FloodBadCookie} {
		t.Run(string(mode), func(t *testing.T) {
			f := newFloodFake(t, GenerateHashes(20))
			cfg := testFloodConfig(f.addr())
			cfg.FloodMode = mode
			cfg.Duration = 500 * time.Millisecond
			rep, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			fl := rep.Flood.Flood
			checkJoins(t, rep.Flood.Legit)
			if fl.Sent == 0 || fl.Connects != 0 || rep.Flood.Legit.OK != rep.Flood.Legit.Joins {
				t.Errorf("sent %d, connects %d, legit %+v; want a flood without connects, legit all OK", fl.Sent, fl.Connects, rep.Flood.Legit)
			}
			// The fake answers neither garbage nor forged IDs (nor, by
			// chance, a garbage datagram that parses as a connect).
			if fl.Replies != 0 {
				t.Errorf("replies %d (%v), want none", fl.Replies, fl.Kinds)
			}
			f.mu.Lock()
			lengths := len(f.lengths)
			f.mu.Unlock()
			if mode == FloodGarbage && lengths < 3 {
				t.Errorf("garbage of %d lengths, want several", lengths)
			}
		})
	}
}

func TestRunFloodOff(t *testing.T) {
	f := newFloodFake(t, GenerateHashes(20))
	cfg := testFloodConfig(f.addr())
	cfg.FloodRate = FloodOff
	cfg.FloodSources = netip.Prefix{} // not needed
	cfg.Warmup, cfg.Duration = 0, 300*time.Millisecond
	cfg.ServerPID = os.Getpid() // this test: someone has to be the server
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Flood == nil || rep.Flood.Flood != nil || rep.Flood.Legit.OK == 0 || rep.Flood.Legit.OK != rep.Flood.Legit.Joins {
		t.Fatalf("flood report %+v, want legit joins only, all OK", rep.Flood)
	}
	if _, out := f.sourcesIn(cfg.LegitSources); out != 0 {
		t.Errorf("%d sources outside the legit ones", out)
	}
	s := rep.Server
	if s == nil || s.PID != os.Getpid() || s.PeakRSS <= 0 || s.HWM <= 0 || s.Samples < 2 || s.Exited {
		t.Errorf("server report %+v, want this process's memory", s)
	}
	// A connect per legit source; their IDs are reused.
	if c := rep.Class("connect"); c == nil || c.Sent != uint64(rep.Flood.LegitSources) || c.OK != c.Sent {
		t.Errorf("connect class %+v, want one per source (%d)", c, rep.Flood.LegitSources)
	}
}

// With no legit class, the flood runs alone: for a second process beside
// one running the legit class only.
func TestRunFloodOnly(t *testing.T) {
	f := newFloodFake(t, GenerateHashes(20))
	cfg := testFloodConfig(f.addr())
	cfg.LegitRate, cfg.LegitSources = 0, netip.Prefix{}
	cfg.Warmup, cfg.Duration = 0, 300*time.Millisecond
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < cfg.Duration || d > cfg.Duration+cfg.Timeout+time.Second {
		t.Errorf("Run took %v, want about %v", d, cfg.Duration)
	}
	if fl := rep.Flood.Flood; fl == nil || fl.Sent == 0 || fl.Replies == 0 || rep.Flood.Legit.Joins != 0 || len(rep.Classes) != 0 {
		t.Errorf("report %+v, want a flood only", rep.Flood)
	}
	if in, out := f.sourcesIn(cfg.FloodSources); in != 6 || out != 0 {
		t.Errorf("fake saw %d flood sources and %d others, want 6, 0", in, out)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "no legit class") || strings.Contains(b.String(), "legit requests") {
		t.Errorf("text report: %v\n%s", err, b.String())
	}
}

func TestRunFloodHTTP(t *testing.T) {
	hashes := GenerateHashes(20)
	legit := map[string]bool{}
	for _, h := range hashes {
		legit[string(h[:])] = true
	}
	var mu sync.Mutex
	events := map[string]int{}
	f := newFakeHTTP(t, func(w http.ResponseWriter, q url.Values) {
		ih := q.Get("info_hash")
		if legit[ih] {
			mu.Lock()
			events[q.Get("event")]++
			mu.Unlock()
			w.Write([]byte("d8:intervali1800e5:peers6:abcdefe"))
			return
		}
		switch {
		case ih[0] < 0x40:
			w.Write([]byte("d8:intervali1800e5:peers0:e"))
		case ih[0] < 0x80:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.Write([]byte("d14:failure reason27:torrent is not registered.e"))
		}
	})
	cfg := testFloodConfig("")
	cfg.Protocol, cfg.UDP, cfg.HTTP = HTTP, "", f.srv.URL+"/announce"
	cfg.LegitRate, cfg.FloodRate = 200, 1000
	cfg.Warmup, cfg.Duration = 0, 500*time.Millisecond
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, rep)
	l := rep.Flood.Legit
	checkJoins(t, l)
	if l.Joins != 100 || l.OK != l.Joins {
		t.Errorf("legit %+v, want 100 joins, all OK", l)
	}
	mu.Lock()
	if len(events) != 1 || events["started"] != int(l.Joins) {
		t.Errorf("events %v, want %d started", events, l.Joins)
	}
	mu.Unlock()
	if c := rep.Class("connect"); c == nil || c.OK > uint64(rep.Flood.LegitSources) {
		t.Errorf("connect class %+v, want at most a connection per source, kept alive", c)
	}
	fl := rep.Flood.Flood
	kinds := map[string]uint64{}
	for _, k := range fl.Kinds {
		kinds[k.Kind] = k.Count
	}
	if fl.Sent < 400 || fl.Replies != fl.Sent || kinds["not registered"] == 0 || kinds["announce"] == 0 || kinds["other"] == 0 || kinds["none"] != 0 {
		t.Errorf("flood sent %d, replies %d: %v; want every kind but none", fl.Sent, fl.Replies, kinds)
	}
	if fl.Connects == 0 || fl.Connects > uint64(rep.Flood.FloodSources) {
		t.Errorf("flood connections %d, want one per source (%d), kept alive", fl.Connects, rep.Flood.FloodSources)
	}
}

func TestFloodPacer(t *testing.T) {
	p := newFloodPacer(1000) // one per millisecond
	if n := p.take(0, 64); n != 1 {
		t.Errorf("take(0) = %d, want 1 (the first is due at once)", n)
	}
	if n := p.take(int64(500*time.Microsecond), 64); n != 0 {
		t.Errorf("take(0.5ms) = %d, want 0", n)
	}
	if n := p.take(int64(10*time.Millisecond), 4); n != 4 {
		t.Errorf("take(10ms, 4) = %d, want 4", n)
	}
	if n := p.take(int64(10*time.Millisecond), 64); n != 6 {
		t.Errorf("take(10ms) = %d, want the other 6", n)
	}
	if got := p.pause(int64(10 * time.Millisecond)); got != time.Millisecond {
		t.Errorf("pause = %v, want 1ms", got)
	}
	if n := newFloodPacer(0).take(0, 64); n != 64 {
		t.Errorf("unlimited take = %d, want 64", n)
	}
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		msg  string
		want floodKind
	}{
		{"torrent not registered on this tracker", kindNotRegistered},
		{"Unregistered torrent", kindNotRegistered},
		{"Requested download is not authorized for use with this tracker.", kindNotRegistered},
		{"rate limited", kindErrorOther},
		{"", kindErrorOther},
	}
	for _, tt := range tests {
		if got := errorKind([]byte(tt.msg)); got != tt.want {
			t.Errorf("errorKind(%q) = %v, want %v", tt.msg, floodKindNames[got], floodKindNames[tt.want])
		}
	}
}

// newSinkFlood returns a flood worker with one source whose datagrams go
// to a socket nobody reads.
func newSinkFlood(tb testing.TB, mode FloodMode, noGSO bool) (*floodUDPWorker, *floodSource) {
	tb.Helper()
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	cfg := testFloodConfig(sink.LocalAddr().String())
	cfg.FloodMode, cfg.NoGSO, cfg.FloodWorkers = mode, noGSO, 1
	cfg.Warmup = 0
	rs := newRunState(&cfg, &population{hashes: GenerateHashes(1)})
	rs.start()
	f, err := newFloodUDP(rs, sink.LocalAddr().(*net.UDPAddr).AddrPort(), []netip.Addr{netip.MustParseAddr("127.7.0.1")}, newFloodPacer(0))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.close)
	w := f.workers[0]
	s := w.srcs[0]
	s.hasConn, s.connID = true, 42
	return w, s
}

func TestFloodUDPDatagrams(t *testing.T) {
	w, s := newSinkFlood(t, FloodValid, true)
	w.sendBatch(s, 3, 1)
	if w.stats.sent != 3 || w.stats.sendErrors != 0 {
		t.Fatalf("sent %d, errors %d; want 3, 0", w.stats.sent, w.stats.sendErrors)
	}
	if len(w.pkts) != 3*bep15.AnnounceLen {
		t.Fatalf("%d bytes of datagrams, want 3 announces", len(w.pkts))
	}
	var a, b bep15.Announce
	ha, _ := bep15.ParseHeader(w.pkts)
	hb, _ := bep15.ParseHeader(w.pkts[bep15.AnnounceLen:])
	bep15.ParseAnnounce(w.pkts[:bep15.AnnounceLen], &a)
	bep15.ParseAnnounce(w.pkts[bep15.AnnounceLen:2*bep15.AnnounceLen], &b)
	if ha.ConnID != 42 || ha.Action != bep15.ActionAnnounce || a.Event != uint32(bittorrent.EventStarted) ||
		!bytes.HasPrefix(a.PeerID[:], []byte(floodPeerID)) {
		t.Errorf("announce %+v %+v: want connection ID 42, action announce, event started, peer ID %s…", ha, a, floodPeerID)
	}
	if a.InfoHash == b.InfoHash || ha.TxID == hb.TxID || a.PeerID == b.PeerID {
		t.Errorf("two announces share an info hash, transaction or peer ID:\n%+v %+v\n%+v %+v", ha, a, hb, b)
	}
	if ha.TxID&floodConnFlag != 0 {
		t.Errorf("announce transaction ID %x looks like a connect's", ha.TxID)
	}

	// Replies are counted by kind.
	// Replies are counted by kind, if their request was sent after the
	// warm-up.
	const tx = floodMeasured | 1
	w.handle(s, reply(bep15.ActionError, tx, []byte("torrent not registered\x00")), 1)
	w.handle(s, reply(bep15.ActionError, tx, []byte("torrent not registered\x00")), 1)
	w.handle(s, reply(bep15.ActionError, 1, []byte("torrent not registered\x00")), 1) // warm-up
	w.handle(s, reply(bep15.ActionError, tx, []byte("busy")), 1)
	w.handle(s, reply(bep15.ActionAnnounce, tx, u32(1800), u32(0), u32(0)), 1)
	w.handle(s, reply(bep15.ActionAnnounce, tx), 1)
	w.handle(s, []byte{1, 2}, 1)
	w.handle(s, reply(bep15.ActionConnect, tx, make([]byte, 8)), 1) // no connect of ours
	want := [numFloodKinds]uint64{kindNotRegistered: 2, kindErrorOther: 1, kindAnnounce: 1, kindOther: 3}
	if w.stats.kinds != want {
		t.Errorf("kinds = %v, want %v", w.stats.kinds, want)
	}
	if top := w.stats.report(time.Second).TopMessages; len(top) == 0 || top[0].Message != "torrent not registered" || top[0].Count != 2 {
		t.Errorf("top messages %v", top)
	}

	// A connect reply matching the source's connect gives it its ID.
	s.hasConn, s.connBusy, s.connTx = false, true, floodConnFlag|7
	w.handle(s, reply(bep15.ActionConnect, floodConnFlag|7, []byte{0, 0, 0, 0, 0, 0, 0, 9}), 5)
	if !s.hasConn || s.connID != 9 || s.connAt != 5 || w.stats.connectsOK != 1 {
		t.Errorf("after connect reply: %+v", s)
	}
}

func TestFloodUDPDoesNotAllocate(t *testing.T) {
	for _, mode := range []FloodMode{FloodValid, FloodBadCookie, FloodGarbage} {
		w, s := newSinkFlood(t, mode, false)
		notReg := reply(bep15.ActionError, floodMeasured|1, []byte("torrent not registered\x00"))
		allocs := testing.AllocsPerRun(200, func() {
			w.sendBatch(s, udpBatch, 1)
			w.handle(s, notReg, 1)
		})
		if allocs != 0 {
			t.Errorf("%s: sendBatch+handle allocate %v times per batch, want 0", mode, allocs)
		}
	}
}

// BenchmarkFloodUDP measures the generator's own flood rate: datagrams per
// second one goroutine sends to a socket nobody reads (the kernel drops
// them once its buffer is full), with and without GSO.
func BenchmarkFloodUDP(b *testing.B) {
	for _, noGSO := range []bool{false, true} {
		b.Run(fmt.Sprintf("gso=%v", !noGSO), func(b *testing.B) {
			w, s := newSinkFlood(b, FloodValid, noGSO)
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				w.poll(s, 1)
				w.sendBatch(s, udpBatch, 1)
				n += udpBatch
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "datagrams/s")
			if w.stats.sendErrors > 0 {
				b.Errorf("%d send errors: %v", w.stats.sendErrors, w.stats.ioErrorMsg.top(3))
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	stat := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 8 0 100 0 0\n"
	if got, err := parseStatCPU([]byte(stat)); err != nil || got != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Errorf("parseStatCPU(short) = nil error")
	}
	status := "Name:\tw\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n"
	if rss, hwm, err := parseStatusMem([]byte(status)); err != nil || rss != 1<<20 || hwm != 2<<20 {
		t.Errorf("parseStatusMem = %d, %d, %v; want 1 MiB, 2 MiB", rss, hwm, err)
	}
	if _, _, err := parseStatusMem([]byte("Name:\tkthreadd\n")); err == nil {
		t.Errorf("parseStatusMem(kernel thread) = nil error")
	}
	if _, err := newServerProbe(1 << 30); err == nil {
		t.Errorf("newServerProbe(no such pid) = nil error")
	}
}

func TestParseProcStat(t *testing.T) {
	stat := "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\nintr 1 2\n"
	a, err := parseProcStat([]byte(stat))
	if err != nil || len(a.busy) != 2 || a.busy[0] != 10 || a.total[0] != 50 {
		t.Fatalf("parseProcStat = %+v, %v; want two CPUs, 10 of 50 busy", a, err)
	}
	b, _ := parseProcStat([]byte("cpu0 15 0 5 50 0 0 0 0 0 0\ncpu1 5 0 5 60 0 0 0 0 0 0\n"))
	if r := machineReport(a, b); r == nil || r.CPUBusy[0] != 0.5 || r.CPUBusy[1] != 0 {
		t.Errorf("machineReport = %+v, want CPU 0 half busy, CPU 1 idle", r)
	}
	if _, err := parseProcStat([]byte("intr 1\n")); err == nil {
		t.Error("parseProcStat(no cpus) = nil error")
	}
}
