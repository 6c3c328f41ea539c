package evidence

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/sensor"
)

// recordSink keeps the records an Episodes appends.
type recordSink struct {
	mu   sync.Mutex
	recs []Record
}

func (r *recordSink) Append(_ context.Context, rec Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}

// episodes decodes the episode records, oldest first.
func (r *recordSink) episodes(t *testing.T) []Episode {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Episode
	for _, rec := range r.recs {
		if rec.Kind != KindEpisode {
			continue
		}
		var ep Episode
		if err := json.Unmarshal(rec.body, &ep); err != nil {
			t.Fatalf("episode record %s: %v", rec.body, err)
		}
		out = append(out, ep)
	}
	return out
}

// alertLog keeps the alerts an Episodes raises.
type alertLog struct {
	mu     sync.Mutex
	events []string // "event id"
}

func (a *alertLog) Alert(event string, ep *Episode) {
	a.mu.Lock()
	a.events = append(a.events, event+" "+ep.ID)
	a.mu.Unlock()
}

func testEpisodeConfig() EpisodeConfig {
	c := DefaultEpisodeConfig()
	c.TableBytes = 1 << 20
	c.LocationDB = "off"
	return c.WithGuardRates(50, 500)
}

func newTestEpisodes(t testing.TB, cfg EpisodeConfig) (*Episodes, *recordSink, *alertLog) {
	t.Helper()
	recs, alerts := &recordSink{}, &alertLog{}
	e, err := NewEpisodes(cfg, EpisodeDeps{
		Log:        recs,
		Alerts:     alerts,
		Registered: func(ih bittorrent.InfoHash) bool { return ih[0] == 0xaa },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, recs, alerts
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// at returns t0 + s seconds + ms milliseconds.
func at(s, ms int) time.Time {
	return t0.Add(time.Duration(s)*time.Second + time.Duration(ms)*time.Millisecond)
}

// burst sends n copies of k spread evenly over second s.
func burst(e *Episodes, k Knock, s, n int) {
	for i := range n {
		e.Knock(&k, t0.Add(time.Duration(s)*time.Second+time.Duration(i)*time.Second/time.Duration(n)))
	}
}

func TestEpisodeThresholds(t *testing.T) {
	src := netip.MustParseAddr("198.51.100.7")
	announce := Knock{Src: src, Kind: ReqAnnounce, Verified: true}
	refused := Knock{Src: src, Kind: ReqAnnounce, Verified: true, Action: ActRefused}
	tests := []struct {
		name     string
		send     func(e *Episodes)
		want     []string // "source kind"
		wantNone bool
	}{
		{name: "rate at the threshold", send: func(e *Episodes) { burst(e, announce, 0, 50) }, wantNone: true},
		{name: "rate over the threshold", send: func(e *Episodes) { burst(e, announce, 0, 51) }, want: []string{"198.51.100.7 rate"}},
		{name: "rate over two seconds, under in each", send: func(e *Episodes) { burst(e, announce, 0, 40); burst(e, announce, 1, 40) }, wantNone: true},
		{name: "refusals under", send: func(e *Episodes) { burst(e, refused, 0, 9) }, wantNone: true},
		{name: "refusals", send: func(e *Episodes) { burst(e, refused, 0, 10) }, want: []string{"198.51.100.7 refusals"}},
		{name: "ban", send: func(e *Episodes) {
			burst(e, Knock{Src: src, Kind: ReqScrape, Verified: true, Action: ActBanned}, 0, 1)
		}, want: []string{"198.51.100.7 ban"}},
		{name: "kernel drops", send: func(e *Episodes) { e.Sensed(src, sensor.KernelDropped, 3, t0) }, want: []string{"198.51.100.7 ban"}},
		{name: "syn", send: func(e *Episodes) { e.Sensed(src, sensor.SYN, 100, t0) }, want: []string{"198.51.100.7 syn"}},
		{name: "syn under", send: func(e *Episodes) { e.Sensed(src, sensor.SYN, 40, t0); e.Sensed(src, sensor.SYN, 40, at(1, 0)) }, wantNone: true},
		{name: "garbage", send: func(e *Episodes) { burst(e, Knock{Src: src, Kind: ReqGarbage}, 0, 60) }, want: []string{"198.51.100.7 garbage"}},
		{name: "forged cookies", send: func(e *Episodes) { burst(e, Knock{Src: src, Kind: ReqForgedCookie}, 0, 60) }, want: []string{"198.51.100.7 garbage"}},
		{name: "connects", send: func(e *Episodes) { burst(e, Knock{Src: src, Kind: ReqConnect}, 0, 60) }, want: []string{"198.51.100.7 connect"}},
		{name: "IPv6 source is its /64", send: func(e *Episodes) {
			for i := range 60 {
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 15: byte(i)})
				e.Knock(&Knock{Src: a, Kind: ReqAnnounce, Verified: true}, at(0, i))
			}
		}, want: []string{"2001:db8:1:2::/64 rate"}},
		{name: "IPv4-mapped is IPv4", send: func(e *Episodes) {
			burst(e, Knock{Src: netip.MustParseAddr("::ffff:198.51.100.7"), Kind: ReqAnnounce, Verified: true}, 0, 51)
		}, want: []string{"198.51.100.7 rate"}},
		{name: "many addresses of a prefix", send: func(e *Episodes) {
			// 200 addresses of one /24, 3 requests each in one second:
			// 600 over the prefix threshold of 500, none over 50.
			for r := range 3 {
				for i := range 200 {
					a := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
					e.Knock(&Knock{Src: a, Kind: ReqAnnounce, Verified: true}, at(0, r*300+i))
				}
			}
		}, want: []string{"203.0.113.0/24 rate"}},
		{name: "one address is no prefix episode", send: func(e *Episodes) { burst(e, announce, 0, 600) }, want: []string{"198.51.100.7 rate"}},
		{name: "few addresses are no prefix episode", send: func(e *Episodes) {
			for i := range 600 {
				a := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 3)})
				e.Knock(&Knock{Src: a, Kind: ReqAnnounce, Verified: true}, at(0, i))
			}
		}, want: []string{"203.0.113.0 rate", "203.0.113.1 rate", "203.0.113.2 rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := newTestEpisodes(t, testEpisodeConfig())
			tt.send(e)
			var got []string
			for _, ep := range e.Open() {
				got = append(got, ep.Source+" "+ep.Kind)
			}
			slices.Sort(got)
			if tt.wantNone {
				if len(got) > 0 {
					t.Fatalf("episodes %v, want none", got)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("episodes %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEpisodeCountsExact checks every count of an episode against what
// was sent: by kind, verified or not, per second, peak and mean.
func TestEpisodeCountsExact(t *testing.T) {
	e, _, _ := newTestEpisodes(t, testEpisodeConfig())
	src := netip.MustParseAddr("198.51.100.7")
	perSec := []int{100, 8000, 8000, 7990, 3}
	ih := [][]bittorrent.InfoHash{{{0xaa, 1}}, {{0xbb, 2}}}
	var pid bittorrent.PeerID
	copy(pid[:], "-qB4520-xxxxxxxxxxxx")
	want := Requests{}
	var total uint64
	var refusedN, limitedN uint64
	for s, n := range perSec {
		for i := range n {
			now := at(s, 0).Add(time.Duration(i) * time.Second / time.Duration(n))
			var k Knock
			switch i % 4 {
			case 0:
				k = Knock{Src: src, Kind: ReqConnect}
				want.Connect.Spoofable++
			case 1:
				k = Knock{Src: src, Kind: ReqAnnounce, Verified: true, Action: ActRefused, Hashes: ih[1], PeerID: pid, HasPeerID: true, Port: 6881}
				want.Announce.Verified++
				refusedN++
			case 2:
				k = Knock{Src: src, Kind: ReqAnnounce, Verified: true, Action: ActLimited}
				want.Announce.Verified++
				limitedN++
			case 3:
				k = Knock{Src: src, Kind: ReqScrape, Verified: true, Hashes: ih[0], UserAgent: "Deluge/2.1.1"}
				want.Scrape.Verified++
			}
			e.Knock(&k, now)
			total++
		}
	}
	eps := e.Open()
	if len(eps) != 1 {
		t.Fatalf("%d episodes, want 1", len(eps))
	}
	ep := eps[0]
	if ep.Requests != want || ep.Total != total {
		t.Errorf("requests %+v total %d, want %+v total %d", ep.Requests, ep.Total, want, total)
	}
	if ep.Actions.Refused != refusedN || ep.Actions.Limited != limitedN {
		t.Errorf("actions %+v, want refused %d limited %d", ep.Actions, refusedN, limitedN)
	}
	var counts []uint64
	for _, n := range perSec {
		counts = append(counts, uint64(n))
	}
	if !slices.Equal(ep.Timeline.Counts, counts) || ep.Timeline.BucketSeconds != 1 || !ep.Timeline.Start.Equal(t0) {
		t.Errorf("timeline %+v, want start %v, 1 s buckets %v", ep.Timeline, t0, counts)
	}
	if ep.PeakPerSec != 8000 {
		t.Errorf("peak %v, want 8000", ep.PeakPerSec)
	}
	if !ep.FirstSeen.Equal(t0) || ep.LastSeen.Before(at(4, 600)) {
		t.Errorf("first %v last %v, want %v and past %v", ep.FirstSeen, ep.LastSeen, t0, at(4, 600))
	}
	if wantMean := float64(total) / (ep.LastSeen.Sub(ep.FirstSeen).Seconds() + 1); ep.MeanPerSec < wantMean*0.999 || ep.MeanPerSec > wantMean*1.001 {
		t.Errorf("mean %v, want %v", ep.MeanPerSec, wantMean)
	}
	// One request in four is refused: ten refusals come before 51 requests.
	if ep.Verified != true || ep.ID != fmt.Sprintf("E-%d-198.51.100.7", t0.Unix()) || ep.Prefix != "198.51.100.0/24" || ep.Kind != EpisodeRefusals {
		t.Errorf("verified %v id %q prefix %q kind %q", ep.Verified, ep.ID, ep.Prefix, ep.Kind)
	}
	if len(ep.Hashes) != 2 || ep.HashesSeen != 2 || ep.HashesRegistered != 1 {
		t.Errorf("hashes %+v seen %d registered %d, want 2, 2, 1", ep.Hashes, ep.HashesSeen, ep.HashesRegistered)
	}
	for _, h := range ep.Hashes {
		if h.Registered != (h.InfoHash[0] == 0xaa) {
			t.Errorf("hash %v registered = %v", h.InfoHash, h.Registered)
		}
	}
	if len(ep.Clients) != 1 || ep.Clients[0].PeerID != "-qB4520-" || ep.Clients[0].Client != "qBittorrent 4.5.2" {
		t.Errorf("clients %+v", ep.Clients)
	}
	if len(ep.UserAgents) != 1 || ep.UserAgents[0].Value != "Deluge/2.1.1" || len(ep.Ports) != 1 || ep.Ports[0].Port != 6881 {
		t.Errorf("user agents %+v ports %+v", ep.UserAgents, ep.Ports)
	}
	// Sampled above detailExact a second, the samples still estimate.
	for _, h := range ep.Hashes {
		if w := total / 4; h.Count < w*8/10 || h.Count > w*12/10 {
			t.Errorf("hash %v counted %d, want about %d", h.InfoHash, h.Count, w)
		}
	}
}

// TestEpisodeRecords follows an episode from opening to closing: its
// records, their order and content, and its alerts.
func TestEpisodeRecords(t *testing.T) {
	cfg := testEpisodeConfig()
	cfg.QuietPeriod = 30 * time.Second
	e, recs, alerts := newTestEpisodes(t, cfg)
	src := netip.MustParseAddr("198.51.100.7")
	k := Knock{Src: src, Kind: ReqAnnounce, Verified: true, Action: ActRefused}
	ctx := context.Background()

	burst(e, k, 0, 20)
	e.sweep(ctx, at(0, 999))
	burst(e, k, 1, 400) // peak x20: an escalation, but not before 10 s
	e.sweep(ctx, at(2, 0))
	for s := 2; s < 25; s++ {
		burst(e, k, s, 400)
		e.sweep(ctx, at(s+1, 0))
	}
	burst(e, Knock{Src: src, Kind: ReqAnnounce, Verified: true, Action: ActBanned}, 25, 10)
	for s := 26; s < 70; s++ {
		e.sweep(ctx, at(s, 0))
	}
	eps := recs.episodes(t)
	var events []string
	for _, ep := range eps {
		events = append(events, ep.Event+" "+ep.State)
	}
	want := []string{"opened open", "escalated open", "updated open", "escalated open", "closed closed"}
	if !slices.Equal(events, want) {
		t.Fatalf("records %v, want %v", events, want)
	}
	last := eps[len(eps)-1]
	if last.Total != 20+24*400+10 || last.Actions.Banned != 10 || last.Actions.Refused != 20+24*400 {
		t.Errorf("last record total %d actions %+v", last.Total, last.Actions)
	}
	for i := 1; i < len(eps); i++ {
		if eps[i].ID != eps[0].ID {
			t.Errorf("record %d id %q, want %q", i, eps[i].ID, eps[0].ID)
		}
	}
	alerts.mu.Lock()
	defer alerts.mu.Unlock()
	if len(alerts.events) != 3 || !strings.HasPrefix(alerts.events[0], "opened ") || !strings.HasPrefix(alerts.events[1], "escalated ") {
		t.Errorf("alerts %v, want opened then two escalations", alerts.events)
	}
	if e.Stats().Open != 0 || len(e.List(10)) != 1 {
		t.Errorf("after closing: %+v, %d listed", e.Stats(), len(e.List(10)))
	}
	if got, ok := e.Get(last.ID); !ok || got.State != EpisodeClosed {
		t.Errorf("Get(%q) = %v, %v", last.ID, got, ok)
	}
	// The source may open a new episode once the old one closed.
	burst(e, k, 100, 20)
	if eps := e.Open(); len(eps) != 1 || eps[0].ID == last.ID {
		t.Errorf("after the quiet period: %v", eps)
	}
}

// TestEpisodeRecordRoundTrip checks that a record's body decodes into the
// Episode it was written from.
func TestEpisodeRecordRoundTrip(t *testing.T) {
	e, recs, _ := newTestEpisodes(t, testEpisodeConfig())
	var pid bittorrent.PeerID
	copy(pid[:], "\x00\x01%bad id.........")
	burst(e, Knock{Src: netip.MustParseAddr("2001:db8::7"), Kind: ReqAnnounce, Verified: true,
		Hashes: []bittorrent.InfoHash{{1}}, PeerID: pid, HasPeerID: true, Port: 1, UserAgent: "x\xff\ny"}, 0, 60)
	want := e.Open()[0]
	e.sweep(context.Background(), at(0, 999))
	got := recs.episodes(t)
	if len(got) != 1 {
		t.Fatalf("%d records", len(got))
	}
	want.Event = EventOpened
	// The record holds the canonical form; compare after a round trip.
	wb, _ := json.Marshal(want)
	var w2 Episode
	if err := json.Unmarshal(wb, &w2); err != nil {
		t.Fatal(err)
	}
	wb, _ = json.Marshal(w2)
	gb, _ := json.Marshal(got[0])
	if string(wb) != string(gb) {
		t.Errorf("record\n%s\nwant\n%s", gb, wb)
	}
	if got[0].Clients[0].PeerID != "%00%01%25bad i" || got[0].UserAgents[0].Value != "x\ufffd\ny" {
		t.Errorf("peer id %q, user agent %q", got[0].Clients[0].PeerID, got[0].UserAgents[0].Value)
	}
	// Samples start at the opening: the 10 requests after the 50 seeded.
	if got[0].Hashes[0].Count != 10 {
		t.Errorf("hash sample %+v, want 10 of 60 (from the opening on)", got[0].Hashes)
	}
}

func TestEpisodeTimelineDoubles(t *testing.T) {
	e, _, _ := newTestEpisodes(t, testEpisodeConfig())
	k := Knock{Src: netip.MustParseAddr("198.51.100.7"), Kind: ReqGarbage}
	burst(e, k, 0, 60)
	for s := 1; s < 1500; s++ {
		burst(e, k, s, 2)
	}
	ep := e.Open()[0]
	var sum uint64
	for _, c := range ep.Timeline.Counts {
		sum += c
	}
	if ep.Timeline.BucketSeconds != 4 || len(ep.Timeline.Counts) > maxBuckets || sum != ep.Total || ep.Total != 60+1499*2 {
		t.Errorf("bucket %d s, %d buckets, sum %d, total %d", ep.Timeline.BucketSeconds, len(ep.Timeline.Counts), sum, ep.Total)
	}
	if ep.PeakPerSec != 60 {
		t.Errorf("peak %v, want 60", ep.PeakPerSec)
	}
}

// TestEpisodeMaxOpen checks that no more than max_open episodes open and
// that the rest are counted.
func TestEpisodeMaxOpen(t *testing.T) {
	cfg := testEpisodeConfig()
	cfg.MaxOpen = 3
	e, _, _ := newTestEpisodes(t, cfg)
	for i := range 5 {
		burst(e, Knock{Src: netip.AddrFrom4([4]byte{198, 51, byte(i), 7}), Kind: ReqAnnounce, Verified: true, Action: ActBanned}, 0, 2)
	}
	if st := e.Stats(); st.Open != 3 || st.Full != 4 {
		t.Errorf("stats %+v, want 3 open, 4 refused for room (2 sources x 2 events)", st)
	}
}

func TestClientName(t *testing.T) {
	tests := []struct{ id, want string }{
		{"-qB4520-", "qBittorrent 4.5.2"},
		{"-TR4050-", "Transmission 4.0.5"},
		{"-TR3000-", "Transmission 3.0"},
		{"-lt0D60-", "libtorrent 0.13.6"},
		{"-UT355W-", "µTorrent 3.5.5"},
		{"-DE2110-", "Deluge 2.1.1"},
		{"-WF0001-", "unknown"},
		{"M7-4-0--", "Mainline 7.4.0"},
		{"A2-1-37-", "aria2 1.37"},
		{"-qBxxxx-", "qBittorrent"},
		{"\x00\x00\x00\x00\x00\x00\x00\x00", "unknown"},
		{"M-------", "Mainline"},
	}
	for _, tt := range tests {
		if got := ClientName([8]byte([]byte(tt.id))); got != tt.want {
			t.Errorf("ClientName(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

// FuzzClientName checks that any peer ID gives a short, printable name.
func FuzzClientName(f *testing.F) {
	f.Add([]byte("-qB4520-"))    // Azureus style
	f.Add([]byte("M7-4-0--"))    // Mainline style
	f.Add([]byte("A2-999999"))   // numbers too long
	f.Add([]byte("-ZZZZZZ-"))    // unknown code
	f.Add([]byte("\xff-1-2-3-")) // binary
	f.Fuzz(func(t *testing.T, b []byte) {
		var p [8]byte
		copy(p[:], b)
		s := ClientName(p)
		if len(s) > 40 || s == "" {
			t.Fatalf("ClientName(%q) = %q", p, s)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || r == 0xfffd {
				t.Fatalf("ClientName(%q) = %q: not printable", p, s)
			}
		}
		if txt := peerIDText(p); len(txt) > 24 {
			t.Fatalf("peerIDText(%q) = %q", p, txt)
		}
	})
}

func TestHLL(t *testing.T) {
	for _, n := range []int{0, 1, 20, 1000, 100_000} {
		var h hll
		for i := range n {
			h.add(mix(uint64(i)))
			h.add(mix(uint64(i))) // twice: distinct counts once
		}
		got := float64(h.estimate())
		if d := got - float64(n); d > 0.2*float64(n)+0.5 || -d > 0.2*float64(n)+0.5 {
			t.Errorf("estimate of %d distinct = %v", n, got)
		}
	}
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// ticks decodes the tick records, oldest first.
func (r *recordSink) ticks(t *testing.T) []EpisodeTick {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []EpisodeTick
	for _, rec := range r.recs {
		if rec.Kind != KindEpisodeTick {
			continue
		}
		var tk EpisodeTick
		if err := json.Unmarshal(rec.body, &tk); err != nil {
			t.Fatalf("tick record %s: %v", rec.body, err)
		}
		out = append(out, tk)
	}
	return out
}

// TestEpisodeTicksBoundLoss: whenever warden is killed, the records
// written so far (the episode's last record and the ticks after it) hold
// its timeline and total but for the last second or so, though a full
// record comes only every RecordInterval.
func TestEpisodeTicksBoundLoss(t *testing.T) {
	const perSec = 400
	for _, kill := range []time.Time{at(3, 100), at(7, 600), at(12, 999), at(21, 250)} {
		t.Run(kill.Format("05.000"), func(t *testing.T) {
			e, recs, _ := newTestEpisodes(t, testEpisodeConfig())
			k := Knock{Src: netip.MustParseAddr("198.51.100.7"), Kind: ReqAnnounce, Verified: true, Action: ActRefused}
			ctx := context.Background()
			var sent uint64
			// 400 requests a second, the writer sweeping every 250 ms, until
			// the kill.
			for now := at(0, 0); now.Before(kill); now = now.Add(250 * time.Millisecond) {
				for i := range perSec / 4 {
					e.Knock(&k, now.Add(time.Duration(i)*250*time.Millisecond/(perSec/4)))
					sent++
				}
				e.sweep(ctx, now.Add(250*time.Millisecond))
			}
			eps := recs.episodes(t)
			if len(eps) == 0 {
				t.Fatal("no episode record")
			}
			last := eps[len(eps)-1]
			total, timeline := last.Total, map[int64]uint64{}
			for i, n := range last.Timeline.Counts {
				timeline[last.Timeline.Start.Unix()+int64(i)] = n
			}
			for _, tk := range recs.ticks(t) {
				if tk.ID != last.ID {
					t.Fatalf("tick of %s, episode %s", tk.ID, last.ID)
				}
				total = max(total, tk.Total)
				for i, n := range tk.Counts {
					at := tk.Start.Unix() + int64(i)*tk.BucketSeconds
					timeline[at] = max(timeline[at], n)
				}
			}
			var sum uint64
			for _, n := range timeline {
				sum += n
			}
			if sum != total {
				t.Errorf("timeline sums to %d, total %d", sum, total)
			}
			if lost := sent - total; lost > perSec {
				t.Errorf("killed at %v: %d of %d requests not on record, more than a second's %d", kill.Sub(t0), lost, sent, perSec)
			} else {
				t.Logf("killed at %v: %d of %d requests not on record (%d full records, %d ticks)", kill.Sub(t0), lost, sent, len(eps), len(recs.ticks(t)))
			}
		})
	}
}
