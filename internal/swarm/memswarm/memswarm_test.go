package memswarm

import (
	"context"
	"errors"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
	"warden/internal/swarm/swarmtest"
)

func TestContract(t *testing.T) {
	swarmtest.Run(t, func() swarm.Store { return New(swarmtest.Config()) })
}

func BenchmarkStore(b *testing.B) {
	swarmtest.Bench(b, func() swarm.Store { return New(swarmtest.Config()) })
}

// announce records req as admitted under ticket 0, as in open mode.
func announce(t *testing.T, s *Store, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse) {
	t.Helper()
	if err := s.Announce(context.Background(), req, numWant, resp, 0, true); err != nil {
		t.Fatalf("Announce: %v", err)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarm.Config{PeerTTL: 10 * time.Minute, SweepInterval: time.Minute}
	s := newWithClock(cfg, clk.now)
	var resp bittorrent.AnnounceResponse
	for i := range 40 { // past indexMin, so the index is exercised too
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), uint64(i%2), bittorrent.EventStarted), 0, &resp)
	}
	announce(t, s, swarmtest.Req(swarmtest.Hash(2), swarmtest.Addr6(1), 0, bittorrent.EventStarted), 0, &resp)

	clk.t = clk.t.Add(6 * time.Minute)
	for i := range 10 { // these ten announce again and must survive
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), uint64(i%2), bittorrent.EventNone), 0, &resp)
	}
	s.Sweep()
	if st := s.Stats(); st.Seeders+st.Leechers != 41 {
		t.Fatalf("sweep before the TTL removed peers: %+v", st)
	}

	clk.t = clk.t.Add(5 * time.Minute) // 11 minutes after the first announces
	s.Sweep()
	st := s.Stats()
	if want := (swarm.Stats{Torrents: 1, Seeders: 5, Leechers: 5}); st != want {
		t.Fatalf("Stats after expiry = %+v, want %+v", st, want)
	}
	sc := []bittorrent.Scrape{{InfoHash: swarmtest.Hash(1)}}
	if err := s.Scrape(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	if sc := sc[0]; sc.Complete != 5 || sc.Incomplete != 5 {
		t.Fatalf("Scrape after expiry = %+v, want 5 seeders 5 leechers", sc)
	}
	announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(100), 1, bittorrent.EventStarted), 50, &resp)
	if resp.Peers.Len() != 10 {
		t.Fatalf("after expiry a leecher got %d peers, want the 10 live ones", resp.Peers.Len())
	}
	for _, p := range resp.Peers.All() {
		if b := p.Addr().As4(); b[3] >= 10 {
			t.Fatalf("expired peer %v handed out", p)
		}
	}
}

func TestAnnounceAllocs(t *testing.T) {
	s := New(swarmtest.Config())
	var resp bittorrent.AnnounceResponse
	for i := range 100 {
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), uint64(i%2), bittorrent.EventStarted), 50, &resp)
	}
	req := swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(7), 1, bittorrent.EventNone)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if err := s.Announce(ctx, req, 50, &resp, 0, false); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("announce of a known peer allocates %v times, want 0", n)
	}
}

func TestThrottle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarm.DefaultConfig()
	cfg.ThrottleInterval = 30 * time.Second
	s := newWithClock(cfg, clk.now)
	var resp bittorrent.AnnounceResponse
	for i := range 5 {
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), 0, bittorrent.EventStarted), 50, &resp)
	}
	me := swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(9), 5, bittorrent.EventStarted)
	announce(t, s, me, 50, &resp)
	if resp.Peers.Len() != 5 {
		t.Fatalf("first announce got %d peers, want 5", resp.Peers.Len())
	}
	me.Event = bittorrent.EventNone
	clk.t = clk.t.Add(10 * time.Second)
	announce(t, s, me, 50, &resp)
	if resp.Peers.Len() != 0 || resp.Complete != 5 || resp.Incomplete != 1 {
		t.Fatalf("re-announce after 10s: %d peers, %d/%d; want no peers and the counts", resp.Peers.Len(), resp.Complete, resp.Incomplete)
	}
	me.Event = bittorrent.EventCompleted // events are never throttled
	me.Left = 0
	announce(t, s, me, 50, &resp)
	if resp.Complete != 6 {
		t.Fatalf("completed event not applied: %d seeders", resp.Complete)
	}
	me.Event, me.Left = bittorrent.EventNone, 5
	clk.t = clk.t.Add(31 * time.Second)
	announce(t, s, me, 50, &resp)
	if resp.Peers.Len() != 5 {
		t.Fatalf("re-announce after 31s got %d peers, want 5", resp.Peers.Len())
	}
}

// TestStampWraps runs the store for several days of its clock, past the
// 2^16-second wrap of the last-seen stamps, with a sweep every minute as Run
// does: peers that keep announcing stay, peers that stop go after the TTL,
// and the throttle reads the ages right across the wrap.
func TestStampWraps(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarm.Config{PeerTTL: swarm.MaxPeerTTL, SweepInterval: swarm.MaxPeerTTL, ThrottleInterval: 30 * time.Second}
	s := newWithClock(cfg, clk.now)
	var resp bittorrent.AnnounceResponse
	stay := swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 1, bittorrent.EventStarted)
	announce(t, s, stay, 50, &resp)
	stay.Event = bittorrent.EventNone
	for day := range 3 {
		// One peer that announces once and goes quiet.
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(100+day), 0, bittorrent.EventStarted), 50, &resp)
		for step := time.Duration(0); step < 24*time.Hour; step += 20 * time.Minute {
			clk.t = clk.t.Add(20 * time.Minute)
			announce(t, s, stay, 50, &resp)
			if resp.Peers.Len() > 1 {
				t.Fatalf("day %d +%v: %d peers handed out, want at most the one quiet peer", day, step, resp.Peers.Len())
			}
			if step%swarm.MaxPeerTTL == 0 {
				s.Sweep() // as often as the longest allowed sweep_interval
			}
			clk.t = clk.t.Add(10 * time.Second)
			announce(t, s, stay, 50, &resp)
			if resp.Peers.Len() != 0 {
				t.Fatalf("day %d +%v: a re-announce after 10 s was not throttled", day, step)
			}
		}
		if st := s.Stats(); st.Seeders+st.Leechers != 1 {
			t.Fatalf("day %d: %+v, want only the peer that keeps announcing", day, st)
		}
	}
}

// TestShardsCannotBeAimed: info hashes made to agree in every byte but the
// last, as an attacker aiming at one shard would make them, still spread
// over the shards.
func TestShardsCannotBeAimed(t *testing.T) {
	s := New(swarmtest.Config())
	used := map[*shard]bool{}
	var ih bittorrent.InfoHash
	for i := range 1000 {
		ih[19] = byte(i)
		ih[18] = byte(i >> 8)
		used[s.shardFor(ih)] = true
	}
	if len(used) < 500 {
		t.Fatalf("1000 near-identical hashes landed in %d shards, want them spread", len(used))
	}
}

// TestAdmissionRemembered: the store keeps the ticket a torrent was
// admitted under, so steady announces need no decision from the caller,
// and forgets it with the torrent.
func TestAdmissionRemembered(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarm.Config{PeerTTL: 10 * time.Minute, SweepInterval: time.Minute}
	s := newWithClock(cfg, clk.now)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	ask := func(peer int, ev bittorrent.Event, ticket uint32) error {
		return s.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(peer), 5, ev), 50, &resp, ticket, false)
	}
	if err := s.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 5, bittorrent.EventStarted), 50, &resp, 7, true); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := ask(i, bittorrent.EventStarted, 7); err != nil {
			t.Fatalf("announce %d under the admitted ticket: %v", i, err)
		}
	}
	if err := ask(1, bittorrent.EventNone, 8); !errors.Is(err, swarm.ErrNotAdmitted) {
		t.Fatalf("announce under a newer ticket: %v, want ErrNotAdmitted", err)
	}
	if err := ask(1, bittorrent.EventNone, 7); err != nil {
		t.Fatalf("a refused newer ticket replaced the admitted one: %v", err)
	}
	clk.t = clk.t.Add(11 * time.Minute)
	s.Sweep() // every peer expires, and the torrent with them
	if err := ask(1, bittorrent.EventStarted, 7); !errors.Is(err, swarm.ErrNotAdmitted) {
		t.Fatalf("announce after the torrent was swept: %v, want ErrNotAdmitted", err)
	}
}
