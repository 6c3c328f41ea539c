package httptracker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

// eventLog is a Sink that keeps copies of what it is told.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) Request(ev Event) {
	ev.Hashes = slices.Clone(ev.Hashes)
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) take() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.evs
	l.evs = nil
	return evs
}

// oneRegistry tracks testHash alone.
type oneRegistry struct{}

func (oneRegistry) Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string) {
	return ih == testHash, false, ""
}
func (oneRegistry) Generation() uint64 { return 1 }

func allowlistTracker(contact string) *tracker.Tracker {
	cfg := tracker.DefaultConfig()
	cfg.AbuseContact = contact
	return tracker.New(memswarm.New(swarmtest.Config()), oneRegistry{}, cfg, slog.New(slog.DiscardHandler))
}

// TestSinkEvents checks what the sink is told of each kind of request:
// one event each, with the outcome, what was asked for and the
// User-Agent.
func TestSinkEvents(t *testing.T) {
	h := newHandler(allowlistTracker(""), nil, "", false, slog.New(slog.DiscardHandler))
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst, cfg.BanAfter, cfg.BanWindow = 1, 5, 2, time.Minute // five charged before "limited"
	cfg.RefusalCost = 1                                                           // refusals among them cost one each
	h.guard = newGuard(t, cfg, "192.0.2.0/24\n")
	log := &eventLog{}
	h.sink = log
	foreign := bittorrent.InfoHash{0xfe}
	src := "198.51.100.7:4000"
	ip := netip.MustParseAddr("198.51.100.7")
	ua := []string{"User-Agent", "qBittorrent/4.6.5"}
	tests := []struct {
		name, remote, method, target string
		want                         Event
	}{
		{"announce", src, "GET", announceURL(1, 6881, 100, ""),
			Event{Src: ip, Kind: EventAnnounce, Outcome: Answered, Hashes: []bittorrent.InfoHash{testHash}, HasPeerID: true, Port: 6881}},
		{"refused announce", src, "GET", "/announce?info_hash=" + escapeAll(foreign[:]) + "&peer_id=" + escapeAll(testPeerID[:]) + "&port=1&left=1",
			Event{Src: ip, Kind: EventAnnounce, Outcome: Refused, Hashes: []bittorrent.InfoHash{foreign}, HasPeerID: true, Port: 1}},
		{"refused scrape", src, "GET", "/scrape?info_hash=" + escapeAll(foreign[:]),
			Event{Src: ip, Kind: EventScrape, Outcome: Refused, Hashes: []bittorrent.InfoHash{foreign}}},
		{"malformed", src, "GET", "/announce?info_hash=x", Event{Src: ip, Kind: EventMalformed, Outcome: Answered}},
		{"other path", src, "GET", "/nope", Event{Src: ip, Kind: EventOther, Outcome: Answered}},
		{"other method", src, "POST", "/announce", Event{Src: ip, Kind: EventOther, Outcome: Answered}},
		{"full scrape off", src, "GET", "/scrape", Event{Src: ip, Kind: EventScrape, Outcome: Answered}},
		{"limited", src, "GET", "/scrape", Event{Src: ip, Kind: EventScrape, Outcome: Limited}},
		{"limited again", src, "GET", "/scrape", Event{Src: ip, Kind: EventScrape, Outcome: Limited}},
		{"banned", src, "GET", announceURL(1, 6881, 100, ""), Event{Src: ip, Kind: EventAnnounce, Outcome: Banned}},
		{"blocked", "192.0.2.9:1", "GET", announceURL(1, 6881, 100, ""), Event{Src: netip.MustParseAddr("192.0.2.9"), Kind: EventAnnounce, Outcome: Blocked}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.RemoteAddr = tt.remote
			r.Header.Set(ua[0], ua[1])
			h.ServeHTTP(httptest.NewRecorder(), r)
			evs := log.take()
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(evs), evs)
			}
			got := evs[0]
			if got.Now.IsZero() || got.UserAgent != ua[1] {
				t.Errorf("event time %v, user agent %q", got.Now, got.UserAgent)
			}
			if tt.want.HasPeerID && got.PeerID != testPeerID && string(got.PeerID[:8]) != string(testPeerID[:8]) {
				t.Errorf("peer id %q", got.PeerID)
			}
			if got.Src != tt.want.Src || got.Kind != tt.want.Kind || got.Outcome != tt.want.Outcome ||
				!slices.Equal(got.Hashes, tt.want.Hashes) || got.HasPeerID != tt.want.HasPeerID || got.Port != tt.want.Port {
				t.Errorf("event %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestLimitRepliesCarryContact checks that the answers the guard makes,
// like the tracker's refusals, name the operator's abuse contact.
func TestLimitRepliesCarryContact(t *testing.T) {
	const contact = "abuse@example.org"
	h := newHandler(allowlistTracker(contact), nil, "", false, slog.New(slog.DiscardHandler))
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst, cfg.BanAfter, cfg.BanWindow = 1, 1, 3, time.Minute
	h.guard = newGuard(t, cfg, "")
	var bodies []string
	for range 6 {
		bodies = append(bodies, get(h, "198.51.100.7:1", announceURL(1, 6881, 100, "")).Body.String())
	}
	limited, banned := bodies[1], bodies[5]
	for _, tc := range []struct{ name, body, text string }{
		{"limited", limited, textLimited},
		{"banned", banned, textBanned},
	} {
		want := tc.text + "; contact " + contact
		if !strings.Contains(tc.body, fmt.Sprintf("%d:%s", len(want), want)) {
			t.Errorf("%s reply %q, want the failure reason %q", tc.name, tc.body, want)
		}
	}
	// Without a contact, the texts are as before.
	h2 := newHandler(allowlistTracker(""), nil, "", false, slog.New(slog.DiscardHandler))
	if want := appendFailure(nil, []byte(textLimited)); string(h2.limitedReply) != string(want) {
		t.Errorf("limited reply without contact %q, want %q", h2.limitedReply, want)
	}
}

// TestSinkConnRefused checks that connections closed at accept are
// reported, with why.
func TestSinkConnRefused(t *testing.T) {
	g := newGuard(t, limit.DefaultConfig(), "127.35.1.0/24\n")
	if _, err := g.Limiter().Ban(netip.MustParsePrefix("127.35.0.1/32"), time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", newTestTracker(t), g, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	log := &eventLog{}
	s.ReportKnocks(log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, src := range []string{"127.35.0.1", "127.35.1.9"} {
		c := dialFrom(t, s, src)
		isClosed(c)
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	var evs []Event
	for len(evs) < 2 && time.Now().Before(deadline) {
		evs = append(evs, log.take()...)
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]Outcome{"127.35.0.1": Banned, "127.35.1.9": Blocked}
	if len(evs) != 2 {
		t.Fatalf("events %+v, want 2", evs)
	}
	for _, ev := range evs {
		if w, ok := want[ev.Src.String()]; !ok || ev.Kind != EventConnRefused || ev.Outcome != w {
			t.Errorf("event %+v, want a refused connection, outcome %v", ev, w)
		}
	}
}

// countSink keeps nothing, for the allocation guard.
type countSink struct{ n int }

func (s *countSink) Request(ev Event) { s.n += len(ev.Hashes) + len(ev.UserAgent) }

// TestSinkAllocs checks that reporting keeps the request path free of
// allocations.
func TestSinkAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	h := newTestHandler(t, DefaultConfig(), nil)
	h.sink = &countSink{}
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst, cfg.BanAfter = 1e9, 1e9, 0
	h.guard = newGuard(t, cfg, "")
	limited := newTestHandler(t, DefaultConfig(), nil)
	limited.sink = &countSink{}
	cfg.RatePerSec, cfg.Burst = 0.001, 1
	limited.guard = newGuard(t, cfg, "")
	for _, tc := range []struct {
		name   string
		h      *handler
		target string
	}{
		{"announce", h, announceURL(0, 6881, 100, "")},
		{"scrape", h, "/scrape?info_hash=" + escapeAll(testHash[:])},
		{"limited", limited, announceURL(0, 6881, 100, "")},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		r.RemoteAddr = "198.51.100.1:1"
		r.Header.Set("User-Agent", "Transmission/4.0.5")
		w := &discardWriter{h: make(http.Header)}
		tc.h.ServeHTTP(w, r)
		if n := testing.AllocsPerRun(200, func() { tc.h.ServeHTTP(w, r) }); n != 0 {
			t.Errorf("%s with a sink: %v allocations per request, want 0", tc.name, n)
		}
	}
}
