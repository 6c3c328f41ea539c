package main

import (
	"net/netip"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/evidence"
	"warden/internal/httptracker"
	"warden/internal/udptracker"
)

func testEpisodes(t *testing.T) *evidence.Episodes {
	t.Helper()
	cfg := evidence.DefaultEpisodeConfig()
	cfg.LocationDB, cfg.TableBytes = "off", 1<<20
	e, err := evidence.NewEpisodes(cfg.WithGuardRates(50, 500), evidence.EpisodeDeps{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestKnockAdapters checks that what the frontends report reaches the
// episodes as the contract counts it: kind, verified or spoofable, and
// what warden did.
func TestKnockAdapters(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	hashes := []bittorrent.InfoHash{{1}}
	tests := []struct {
		name  string
		send  func(e *evidence.Episodes, src netip.Addr, i int)
		check func(ep *evidence.Episode) bool
	}{
		{"udp refused announces", func(e *evidence.Episodes, src netip.Addr, i int) {
			udpKnocks{e}.Datagram(udptracker.Event{Src: src, Now: now, Verified: true, Kind: udptracker.EventAnnounce, Outcome: udptracker.Refused, Hashes: hashes})
		}, func(ep *evidence.Episode) bool {
			return ep.Kind == evidence.EpisodeRefusals && ep.Requests.Announce.Verified == 20 && ep.Actions.Refused == 20 && len(ep.Hashes) == 1
		}},
		{"udp bare connects", func(e *evidence.Episodes, src netip.Addr, i int) {
			udpKnocks{e}.Datagram(udptracker.Event{Src: src, Now: now, Kind: udptracker.EventConnect, Outcome: udptracker.Limited})
		}, nil}, // 20 connects: under the rate threshold of 50
		{"udp forged cookies", func(e *evidence.Episodes, src netip.Addr, i int) {
			for range 3 {
				udpKnocks{e}.Datagram(udptracker.Event{Src: src, Now: now, Kind: udptracker.EventForgedCookie})
			}
		}, func(ep *evidence.Episode) bool {
			return ep.Kind == evidence.EpisodeGarbage && ep.Requests.ForgedCookie.Spoofable == 60 && !ep.Verified
		}},
		{"http limited announces", func(e *evidence.Episodes, src netip.Addr, i int) {
			for range 3 {
				httpKnocks{e}.Request(httptracker.Event{Src: src, Now: now, Kind: httptracker.EventAnnounce, Outcome: httptracker.Limited, UserAgent: "qBittorrent/4.5.2"})
			}
		}, func(ep *evidence.Episode) bool {
			return ep.Kind == evidence.EpisodeRate && ep.Requests.Announce.Verified == 60 && ep.Actions.Limited == 60 &&
				len(ep.UserAgents) == 1 && ep.UserAgents[0].Value == "qBittorrent/4.5.2"
		}},
		{"http connections refused when banned", func(e *evidence.Episodes, src netip.Addr, i int) {
			httpKnocks{e}.Request(httptracker.Event{Src: src, Now: now, Kind: httptracker.EventConnRefused, Outcome: httptracker.Banned})
		}, func(ep *evidence.Episode) bool {
			return ep.Kind == evidence.EpisodeBan && ep.Requests.Connect.Verified == 20 && ep.Actions.Banned == 20
		}},
		{"unknown kinds are dropped", func(e *evidence.Episodes, src netip.Addr, i int) {
			udpKnocks{e}.Datagram(udptracker.Event{Src: src, Now: now, Kind: 200, Outcome: udptracker.Banned})
			httpKnocks{e}.Request(httptracker.Event{Src: src, Now: now, Kind: httptracker.EventAnnounce, Outcome: 200})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEpisodes(t)
			src := netip.MustParseAddr("198.51.100.7")
			for i := range 20 {
				tt.send(e, src, i)
			}
			open := e.Open()
			switch {
			case tt.check == nil && len(open) != 0:
				t.Fatalf("opened %s (%s), want none", open[0].ID, open[0].Kind)
			case tt.check == nil:
			case len(open) != 1:
				t.Fatalf("%d episodes open, want 1", len(open))
			case !tt.check(open[0]):
				t.Fatalf("episode %+v", *open[0])
			}
		})
	}
}

// TestKnockAdaptersAllocs: the adapters keep the request path free of
// allocation.
func TestKnockAdaptersAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := testEpisodes(t)
	now := time.Now()
	hashes := []bittorrent.InfoHash{{1}}
	src := netip.MustParseAddr("198.51.100.7")
	u := udptracker.Event{Src: src, Now: now, Verified: true, Kind: udptracker.EventAnnounce, Outcome: udptracker.Refused, Hashes: hashes, HasPeerID: true, Port: 6881}
	h := httptracker.Event{Src: src, Now: now, Kind: httptracker.EventAnnounce, Outcome: httptracker.Refused, Hashes: hashes, UserAgent: "x/1"}
	for range 100 { // an episode opens: its samples fill
		udpKnocks{e}.Datagram(u)
	}
	var sinkU udptracker.Sink = udpKnocks{e}
	var sinkH httptracker.Sink = httpKnocks{e}
	if n := testing.AllocsPerRun(1000, func() { sinkU.Datagram(u) }); n != 0 {
		t.Errorf("udp: %v allocations per datagram", n)
	}
	if n := testing.AllocsPerRun(1000, func() { sinkH.Request(h) }); n != 0 {
		t.Errorf("http: %v allocations per request", n)
	}
}
