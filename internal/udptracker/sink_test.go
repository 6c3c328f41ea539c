package udptracker

import (
	"net/netip"
	"slices"
	"testing"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

// eventLog is a Sink that keeps copies of what it is told.
type eventLog struct{ evs []Event }

func (l *eventLog) Datagram(ev Event) {
	ev.Hashes = slices.Clone(ev.Hashes)
	l.evs = append(l.evs, ev)
}

// countSink is a Sink that keeps nothing, for the allocation test.
type countSink struct{ n int }

func (s *countSink) Datagram(ev Event) { s.n += len(ev.Hashes) + 1 }

// oneRegistry tracks testHash(1) alone.
type oneRegistry struct{}

func (oneRegistry) Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string) {
	return ih == testHash(1), false, ""
}
func (oneRegistry) Generation() uint64 { return 1 }

// TestSinkEvents checks what the sink is told of each kind of datagram:
// one event per datagram, with whether its source was verified and what
// the tracker did.
func TestSinkEvents(t *testing.T) {
	tcfg := tracker.DefaultConfig() // allowlist
	tr := tracker.New(memswarm.New(swarmtest.Config()), oneRegistry{}, tcfg, discardLog())
	c := newTestCodec(t, tr)
	gcfg := limit.DefaultConfig()
	gcfg.RatePerSec, gcfg.Burst, gcfg.BanAfter = 1, 3, 2
	gcfg.RefusalCost = 1 // refusals count as one request here, like the rest
	c.guard = newTestGuard(t, gcfg, "192.0.2.0/24\n")
	log := &eventLog{}
	c.sink = log
	src := netip.MustParseAddrPort("[::ffff:198.51.100.7]:6881")
	ip := netip.MustParseAddr("198.51.100.7")
	cid := c.connect(t, src)
	foreign := testHash(2)

	tests := []struct {
		name string
		src  netip.AddrPort
		pkt  []byte
		want Event
	}{
		{"announce", src, announce{cid: cid, left: 1}.pkt(),
			Event{Src: ip, Verified: true, Kind: EventAnnounce, Outcome: Answered, Hashes: []bittorrent.InfoHash{testHash(1)}, HasPeerID: true, Port: 6881}},
		{"refused announce", src, announce{cid: cid, ih: foreign}.pkt(),
			Event{Src: ip, Verified: true, Kind: EventAnnounce, Outcome: Refused, Hashes: []bittorrent.InfoHash{foreign}, HasPeerID: true, Port: 6881}},
		{"refused scrape", src, scrapePkt(cid, 1, foreign, foreign),
			Event{Src: ip, Verified: true, Kind: EventScrape, Outcome: Refused, Hashes: []bittorrent.InfoHash{foreign, foreign}}},
		{"limited", src, announce{cid: cid}.pkt(), Event{Src: ip, Verified: true, Kind: EventAnnounce, Outcome: Limited}},
		{"banned", src, scrapePkt(cid, 1, foreign), Event{Src: ip, Verified: true, Kind: EventScrape, Outcome: Banned}},
		{"forged cookie", src, announce{cid: cid ^ 1}.pkt(), Event{Src: ip, Kind: EventForgedCookie, Outcome: Answered}},
		{"connect", src4b, connectPkt(1), Event{Src: src4b.Addr(), Kind: EventConnect, Outcome: Answered}},
		{"garbage", src4b, []byte("GET / HTTP/1.1\r\n\r\n"), Event{Src: src4b.Addr(), Kind: EventGarbage, Outcome: Answered}},
		{"bad magic", src4b, make([]byte, 16), Event{Src: src4b.Addr(), Kind: EventGarbage, Outcome: Answered}},
		{"unknown action", src4b, append(bep15.AppendConnect(nil, 1)[:8], 0, 0, 0, 9, 0, 0, 0, 1), Event{Src: src4b.Addr(), Kind: EventGarbage, Outcome: Answered}},
		{"blocked connect", netip.MustParseAddrPort("192.0.2.9:1"), connectPkt(1), Event{Src: netip.MustParseAddr("192.0.2.9"), Kind: EventConnect, Outcome: Blocked}},
		{"blocked announce", netip.MustParseAddrPort("192.0.2.9:1"), announce{cid: 7}.pkt(), Event{Src: netip.MustParseAddr("192.0.2.9"), Kind: EventAnnounce, Outcome: Blocked}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log.evs = nil
			c.do(tt.src, tt.pkt)
			if len(log.evs) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(log.evs), log.evs)
			}
			got := log.evs[0]
			if got.Now.IsZero() {
				t.Errorf("event without a time")
			}
			got.Now = tt.want.Now
			if tt.want.HasPeerID {
				tt.want.PeerID = got.PeerID
				if string(got.PeerID[:8]) != "-WD0001-" {
					t.Errorf("peer id %q", got.PeerID)
				}
			}
			if got.Src != tt.want.Src || got.Verified != tt.want.Verified || got.Kind != tt.want.Kind || got.Outcome != tt.want.Outcome ||
				!slices.Equal(got.Hashes, tt.want.Hashes) || got.HasPeerID != tt.want.HasPeerID || got.Port != tt.want.Port {
				t.Errorf("event %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSinkAllocs checks that reporting to a sink keeps the codec free of
// allocations.
func TestSinkAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c := newTestCodec(t, newTestTracker(t))
	c.sink = &countSink{}
	out := make([]byte, 0, c.maxReply())
	cid := c.connect(t, src4)
	for _, pkt := range [][]byte{connectPkt(1), announce{cid: cid, left: 1}.pkt(), scrapePkt(cid, 1, testHash(1), testHash(2)),
		announce{cid: 1}.pkt(), []byte("garbage garbage garbage")} {
		c.handle(src4, pkt, out)
		if n := testing.AllocsPerRun(100, func() { c.handle(src4, pkt, out) }); n != 0 {
			t.Errorf("handle(%x) with a sink allocates %v times", pkt[:12], n)
		}
	}
}
