package memswarm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
	"warden/internal/swarm/swarmtest"
)

func TestContract(t *testing.T) {
	swarmtest.Run(t, func(cfg swarm.Config) swarm.Store { return New(cfg) })
}

func BenchmarkStore(b *testing.B) {
	swarmtest.Bench(b, func() swarm.Store { return New(swarmtest.Config()) })
}

// announce records req as registered under ticket 0.
func announce(t *testing.T, s *Store, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse) {
	t.Helper()
	if err := s.Announce(context.Background(), req, numWant, resp, 0, swarm.Registered); err != nil {
		t.Fatalf("Announce: %v", err)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarmtest.Config()
	cfg.PeerTTL = 10 * time.Minute
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
	if st := s.Stats(); st.Torrents != 1 || st.Seeders != 5 || st.Leechers != 5 {
		t.Fatalf("Stats after expiry = %+v, want 1 torrent, 5 seeders, 5 leechers", st)
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
		if err := s.Announce(ctx, req, 50, &resp, 0, swarm.Undecided); err != nil {
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
	cfg := swarmtest.Config()
	cfg.PeerTTL, cfg.SweepInterval, cfg.ThrottleInterval = swarm.MaxPeerTTL, swarm.MaxPeerTTL, 30*time.Second
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
	cfg := swarmtest.Config()
	cfg.PeerTTL = 10 * time.Minute
	s := newWithClock(cfg, clk.now)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	ask := func(peer int, ev bittorrent.Event, ticket uint32) error {
		return s.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(peer), 5, ev), 50, &resp, ticket, swarm.Undecided)
	}
	if err := s.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 5, bittorrent.EventStarted), 50, &resp, 7, swarm.Registered); err != nil {
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

// TestSweepGivesBackBounds: a torrent the sweep deletes frees its place in
// the table and in its network's share.
func TestSweepGivesBackBounds(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarmtest.Config()
	cfg.PeerTTL, cfg.MaxTorrents, cfg.MaxTorrentsPerPrefix = 10*time.Minute, 2, 1
	s := newWithClock(cfg, clk.now)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	create := func(n int, adm swarm.Admission) error {
		return s.Announce(ctx, swarmtest.Req(swarmtest.Hash(n), swarmtest.Addr4(1), 5, bittorrent.EventStarted), 50, &resp, 0, adm)
	}
	if err := create(1, swarm.Unlisted); err != nil {
		t.Fatal(err)
	}
	if err := create(2, swarm.Unlisted); !errors.Is(err, swarm.ErrPrefixFull) {
		t.Fatalf("2nd torrent from one network with a share of 1: %v, want ErrPrefixFull", err)
	}
	if err := create(3, swarm.Registered); err != nil {
		t.Fatal(err)
	}
	if err := create(4, swarm.Registered); !errors.Is(err, swarm.ErrFull) {
		t.Fatalf("3rd torrent with max_torrents 2: %v, want ErrFull", err)
	}
	clk.t = clk.t.Add(11 * time.Minute)
	s.Sweep()
	if st := s.Stats(); st.Torrents != 0 {
		t.Fatalf("after the sweep: %+v, want no torrents", st)
	}
	if err := create(2, swarm.Unlisted); err != nil {
		t.Fatalf("the network's torrent was swept, a new one: %v", err)
	}
	if err := create(4, swarm.Registered); err != nil {
		t.Fatalf("two torrents swept, a 2nd new one: %v", err)
	}
}

// TestMaxTorrentsConcurrent: torrents created from every core at once
// never pass MaxTorrents, and every one refused is counted.
func TestMaxTorrentsConcurrent(t *testing.T) {
	cfg := swarmtest.Config()
	cfg.MaxTorrents = 100
	s := New(cfg)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var resp bittorrent.AnnounceResponse
			for i := range 100 {
				req := swarmtest.Req(swarmtest.Hash(w*1000+i), swarmtest.Addr4(w), 5, bittorrent.EventStarted)
				if err := s.Announce(context.Background(), req, 5, &resp, 0, swarm.Registered); err != nil && !errors.Is(err, swarm.ErrFull) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Torrents != 100 || st.RefusedFull != 700 {
		t.Fatalf("800 torrents with max_torrents 100: %+v, want 100 held and 700 refused", st)
	}
}

// TestBoundAllocs: the answers the bounds give (a refused torrent, a peer
// answered but not recorded) allocate nothing.
func TestBoundAllocs(t *testing.T) {
	cfg := swarmtest.Config()
	cfg.MaxTorrents, cfg.MaxTorrentsPerPrefix, cfg.MaxPeersPerAddress = 2, 1, 1
	s := New(cfg)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	for _, r := range []*bittorrent.AnnounceRequest{
		swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 5, bittorrent.EventStarted),
		swarmtest.Req(swarmtest.Hash(2), swarmtest.Addr4(2), 5, bittorrent.EventStarted),
	} {
		if err := s.Announce(ctx, r, 50, &resp, 0, swarm.Unlisted); r.InfoHash == swarmtest.Hash(1) && err != nil {
			t.Fatal(err)
		}
	}
	announce(t, s, swarmtest.Req(swarmtest.Hash(3), swarmtest.Addr4(1<<8), 5, bittorrent.EventStarted), 50, &resp)
	for _, c := range []struct {
		name string
		req  *bittorrent.AnnounceRequest
		adm  swarm.Admission
		want error
	}{
		{"table full", swarmtest.Req(swarmtest.Hash(9), swarmtest.Addr4(1<<16), 5, bittorrent.EventStarted), swarm.Registered, swarm.ErrFull},
		{"network's share used", swarmtest.Req(swarmtest.Hash(9), swarmtest.Addr4(3), 5, bittorrent.EventStarted), swarm.Unlisted, swarm.ErrPrefixFull},
		{"address full", swarmtest.Req(swarmtest.Hash(1), netip.AddrPortFrom(swarmtest.Addr4(1).Addr(), 7), 5, bittorrent.EventStarted), swarm.Unlisted, nil},
	} {
		var err error
		if n := testing.AllocsPerRun(100, func() { err = s.Announce(ctx, c.req, 50, &resp, 0, c.adm) }); n != 0 {
			t.Errorf("%s: allocates %v times, want 0", c.name, n)
		}
		if !errors.Is(err, c.want) || err != nil && c.want == nil {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestPrefixCounts: the sketch's estimate of a network is never below the
// torrents it holds, so no network passes its share; networks that fill
// their share do not push innocent ones out; and giving every torrent
// back leaves the sketch empty.
func TestPrefixCounts(t *testing.T) {
	s := New(swarmtest.Config())
	p := s.prefixes
	const share = 5
	key := func(net int) uint32 { return s.prefixKey(netip.AddrFrom4([4]byte{10, byte(net >> 8), byte(net), 1})) }
	// 2,000 networks, each trying to create twice its share.
	for n := range 2000 {
		got := 0
		for range 2 * share {
			if p.add(key(n), share) {
				got++
			}
		}
		if got != share {
			t.Fatalf("network %d created %d torrents with a share of %d", n, got, share)
		}
	}
	// 50,000 other networks create one torrent each: with every counter
	// of 2,000 full networks in each of 4 rows of 65,536, about 8e-7 of
	// them are refused for sharing all four.
	var refused []int
	for n := 2000; n < 52_000; n++ {
		if !p.add(key(n), share) {
			refused = append(refused, n)
		}
	}
	if len(refused) > 2 {
		t.Fatalf("%d of 50,000 networks refused their first torrent", len(refused))
	}
	for n := range 52_000 {
		switch {
		case n < 2000:
			for range share {
				p.remove(key(n))
			}
		case !slices.Contains(refused, n):
			p.remove(key(n))
		}
	}
	for r := range p {
		for i := range p[r] {
			if v := p[r][i].Load(); v != 0 {
				t.Fatalf("counter %d of row %d is %d after every torrent was given back", i, r, v)
			}
		}
	}
}

// TestSweepManyTorrents: a sweep that deletes most of the torrents in
// every shard's table keeps exactly the live ones, and the memory of the
// others is used again for new ones rather than grown past.
func TestSweepManyTorrents(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg := swarmtest.Config()
	cfg.PeerTTL = 10 * time.Minute
	s := newWithClock(cfg, clk.now)
	var resp bittorrent.AnnounceResponse
	const n = 20_000
	for i := range n {
		announce(t, s, swarmtest.Req(swarmtest.Hash(i), swarmtest.Addr4(i), 1, bittorrent.EventStarted), 5, &resp)
	}
	_, _, full := s.lists.arena.inUse()
	clk.t = clk.t.Add(6 * time.Minute)
	for i := 0; i < n; i += 7 { // these stay
		announce(t, s, swarmtest.Req(swarmtest.Hash(i), swarmtest.Addr4(i), 1, bittorrent.EventNone), 5, &resp)
	}
	clk.t = clk.t.Add(5 * time.Minute)
	s.Sweep()
	live := (n + 6) / 7
	if st := s.Stats(); st.Torrents != live || st.Leechers != live {
		t.Fatalf("after the sweep: %+v, want %d torrents with a leecher each", st, live)
	}
	for i := range n {
		sc := []bittorrent.Scrape{{InfoHash: swarmtest.Hash(i)}}
		s.Scrape(context.Background(), sc)
		if want := uint32(0); i%7 == 0 {
			want = 1
			if sc[0].Incomplete != want {
				t.Fatalf("torrent %d: %+v, want its leecher", i, sc[0])
			}
		} else if sc[0].Incomplete != want {
			t.Fatalf("torrent %d: %+v, want it swept", i, sc[0])
		}
	}
	for i := n; i < n+n-live; i++ {
		announce(t, s, swarmtest.Req(swarmtest.Hash(i), swarmtest.Addr4(i), 1, bittorrent.EventStarted), 5, &resp)
	}
	if _, _, again := s.lists.arena.inUse(); again > full*11/10 {
		t.Fatalf("the arena grew from %d to %d bytes to hold as many torrents again", full, again)
	}
}

// TestManyPortsPerAddress: with a bound on ports per address above
// byHostMax, buckets hash the port too, so one host's ports spread over
// them; the bound still holds across the buckets of a large swarm.
func TestManyPortsPerAddress(t *testing.T) {
	cfg := swarmtest.Config()
	cfg.MaxPeersPerAddress = 300
	s := New(cfg)
	if s.lists.byHost {
		t.Fatal("buckets by host with 300 ports an address")
	}
	var resp bittorrent.AnnounceResponse
	for i := range 2000 { // other hosts, so the swarm has many buckets
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), 1, bittorrent.EventStarted), 0, &resp)
	}
	crowd := netip.MustParseAddr("192.0.2.9")
	for port := range uint16(400) {
		announce(t, s, swarmtest.Req(swarmtest.Hash(1), netip.AddrPortFrom(crowd, 1000+port), 1, bittorrent.EventStarted), 0, &resp)
	}
	if st := s.Stats(); st.Leechers != 2300 || st.UnrecordedAddressFull != 100 {
		t.Fatalf("Stats = %+v, want 2,000 + 300 leechers and 100 ports not recorded", st)
	}
}

// TestSweepCompacts: swarms that grow in step leave a few peer arrays in
// many slabs of each size class they pass; a sweep moves those together,
// so the emptied slabs go back, and keeps every peer.
func TestSweepCompacts(t *testing.T) {
	cfg := swarmtest.Config()
	cfg.MaxPeersPerAddress = cfg.MaxPeersPerTorrent // 32 hosts play every swarm, as bench/run.sh does
	for _, shape := range []struct{ torrents, peers int }{{1000, 1000}, {10, 100_000}} {
		s := New(cfg)
		var resp bittorrent.AnnounceResponse
		total := shape.torrents * shape.peers
		for i := range total {
			req := swarmtest.Req(swarmtest.Hash(i%shape.torrents),
				netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 3, 0, byte(1 + i%32)}), uint16(1024+i/32)), uint64(i%4), bittorrent.EventStarted)
			announce(t, s, req, 1, &resp)
		}
		_, _, before := s.lists.arena.inUse()
		want := s.Stats()
		s.Sweep()
		_, _, after := s.lists.arena.inUse()
		if got := s.Stats(); got.Seeders != want.Seeders || got.Leechers != want.Leechers || got.Seeders+got.Leechers != total {
			t.Fatalf("%d x %d: after the sweep %+v, before %+v, %d announced", shape.torrents, shape.peers, got, want, total)
		}
		for i := range shape.torrents {
			sc := []bittorrent.Scrape{{InfoHash: swarmtest.Hash(i)}}
			s.Scrape(context.Background(), sc)
			if n := int(sc[0].Complete + sc[0].Incomplete); n != shape.peers {
				t.Fatalf("%d x %d: torrent %d holds %d peers after the sweep", shape.torrents, shape.peers, i, n)
			}
		}
		perPeer := func(b int) float64 { return float64(b) / float64(total) }
		t.Logf("%d x %d: arena %.2f bytes per peer before the sweep, %.2f after", shape.torrents, shape.peers, perPeer(before), perPeer(after))
		if perPeer(after) > 9.5 {
			t.Errorf("%d x %d: the arena keeps %.2f bytes per peer after the sweep (%.2f before), want at most 9.5",
				shape.torrents, shape.peers, perPeer(after), perPeer(before))
		}
	}
}

// BenchmarkSweep: one sweep of a full store in which nothing expires, so
// what is measured is the walk and the compaction's look at every bucket.
func BenchmarkSweep(b *testing.B) {
	for _, shape := range []struct{ torrents, peers int }{{100_000, 10}, {1000, 1000}} {
		b.Run(fmt.Sprintf("torrents=%dxpeers=%d", shape.torrents, shape.peers), func(b *testing.B) {
			s := New(swarmtest.Config())
			var resp bittorrent.AnnounceResponse
			ctx := context.Background()
			for i := range shape.torrents * shape.peers {
				req := swarmtest.Req(swarmtest.Hash(i%shape.torrents), swarmtest.Addr4(i/shape.torrents), 1, bittorrent.EventStarted)
				if err := s.Announce(ctx, req, 1, &resp, 0, swarm.Registered); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Sweep()
			}
		})
	}
}
