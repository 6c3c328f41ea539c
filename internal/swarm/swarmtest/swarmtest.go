// Package swarmtest is the contract every swarm.Store must pass, and the
// benchmarks that compare stores. A store's own tests call Run and Bench.
package swarmtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
)

// Run checks store behaviour every implementation must share. newStore
// returns a fresh, empty store with the given configuration for each
// subtest.
func Run(t *testing.T, newStore func(swarm.Config) swarm.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s swarm.Store)
	}{
		{"first announce sees no one", testFirstAnnounce},
		{"peers never include the requester", testNoSelf},
		{"seeders get only leechers", testSeedersGetLeechers},
		{"leechers get seeders and leechers", testLeechersGetAll},
		{"numwant bounds the reply", testNumWant},
		{"stopped removes at once", testStopped},
		{"stopped from unknown peer changes nothing", testStoppedUnknown},
		{"completed counts one download", testCompleted},
		{"leecher becomes seeder", testTransition},
		{"keyed by address not peer id", testKeyedByAddr},
		{"ipv4 and ipv6 stay apart", testFamilies},
		{"v4-mapped addresses are ipv4", testMapped},
		{"scrape of unknown torrent is zero", testScrapeUnknown},
		{"scrape fills a batch in order", testScrapeBatch},
		{"scrape all and stats agree", testScrapeAll},
		{"large swarm stays consistent", testLargeSwarm},
		{"concurrent announces", testConcurrent},
		{"nothing is recorded before admission", testAdmission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(Config())) })
	}
	bounded := []struct {
		name string
		cfg  func(*swarm.Config)
		fn   func(t *testing.T, s swarm.Store)
	}{
		{"a full table refuses new torrents, never live ones", func(c *swarm.Config) { c.MaxTorrents = 3 }, testMaxTorrents},
		{"a network creates at most its share of torrents", func(c *swarm.Config) { c.MaxTorrentsPerPrefix = 2 }, testPerPrefix},
		{"an address holds a handful of ports per torrent", func(c *swarm.Config) { c.MaxPeersPerAddress = 2 }, testPerAddress},
		{"a full swarm answers new peers without recording them", func(c *swarm.Config) { c.MaxPeersPerTorrent = 5 }, testPerTorrent},
	}
	for _, tt := range bounded {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config()
			tt.cfg(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("test config: %v", err)
			}
			tt.fn(t, newStore(cfg))
		})
	}
}

// Hash returns a distinct info hash for n.
func Hash(n int) bittorrent.InfoHash {
	var ih bittorrent.InfoHash
	binary.BigEndian.PutUint64(ih[:8], uint64(n)*0x9E3779B97F4A7C15+1)
	binary.BigEndian.PutUint32(ih[16:], uint32(n))
	return ih
}

// Addr4 returns a distinct IPv4 contact address for n.
func Addr4(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 6881)
}

// Addr6 returns a distinct IPv6 contact address for n.
func Addr6(n int) netip.AddrPort {
	b := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	binary.BigEndian.PutUint32(b[12:], uint32(n))
	return netip.AddrPortFrom(netip.AddrFrom16(b), 51413)
}

// Req builds an announce request.
func Req(ih bittorrent.InfoHash, addr netip.AddrPort, left uint64, ev bittorrent.Event) *bittorrent.AnnounceRequest {
	r := &bittorrent.AnnounceRequest{InfoHash: ih, Addr: addr, Left: left, Event: ev, NumWant: -1}
	copy(r.PeerID[:], fmt.Sprintf("-WD0001-%012d", addr.Port()))
	return r
}

// announce records req for a torrent admitted as registered (ticket 0),
// so that no network's share of torrents is charged. It marks itself a
// helper only on failure: Helper is slow, and the memory benchmarks
// announce millions of times.
func announce(tb testing.TB, s swarm.Store, req *bittorrent.AnnounceRequest, numWant int) *bittorrent.AnnounceResponse {
	var resp bittorrent.AnnounceResponse
	if err := s.Announce(context.Background(), req, numWant, &resp, 0, swarm.Registered); err != nil {
		tb.Helper()
		tb.Fatalf("Announce: %v", err)
	}
	return &resp
}

func scrape(t *testing.T, s swarm.Store, ih bittorrent.InfoHash) bittorrent.Scrape {
	t.Helper()
	sc := []bittorrent.Scrape{{InfoHash: ih}}
	if err := s.Scrape(context.Background(), sc); err != nil {
		t.Fatalf("Scrape: %v", err)
	}
	return sc[0]
}

// totals sums ScrapeAll, which, unlike Stats, may not lag.
func totals(t *testing.T, s swarm.Store) swarm.Stats {
	t.Helper()
	var st swarm.Stats
	err := s.ScrapeAll(context.Background(), func(sc bittorrent.Scrape) bool {
		st.Torrents++
		st.Seeders += int(sc.Complete)
		st.Leechers += int(sc.Incomplete)
		return true
	})
	if err != nil {
		t.Fatalf("ScrapeAll: %v", err)
	}
	return st
}

func counts(t *testing.T, resp *bittorrent.AnnounceResponse, seeders, leechers uint32) {
	t.Helper()
	if resp.Complete != seeders || resp.Incomplete != leechers {
		t.Fatalf("complete/incomplete = %d/%d, want %d/%d", resp.Complete, resp.Incomplete, seeders, leechers)
	}
}

func testFirstAnnounce(t *testing.T, s swarm.Store) {
	resp := announce(t, s, Req(Hash(1), Addr4(1), 100, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 0 {
		t.Fatalf("got %d peers, want 0", resp.Peers.Len())
	}
	counts(t, resp, 0, 1)
}

func testNoSelf(t *testing.T, s swarm.Store) {
	for i := range 5 {
		announce(t, s, Req(Hash(1), Addr4(i), 100, bittorrent.EventStarted), 50)
	}
	for range 20 {
		resp := announce(t, s, Req(Hash(1), Addr4(2), 100, bittorrent.EventNone), 50)
		if resp.Peers.Len() != 4 {
			t.Fatalf("got %d peers, want 4", resp.Peers.Len())
		}
		for _, p := range resp.Peers.All() {
			if p == Addr4(2) {
				t.Fatalf("reply includes the requester %v", p)
			}
		}
	}
}

func testSeedersGetLeechers(t *testing.T, s swarm.Store) {
	for i := range 10 {
		announce(t, s, Req(Hash(1), Addr4(i), 0, bittorrent.EventStarted), 50) // seeders 0-9
	}
	for i := 10; i < 13; i++ {
		announce(t, s, Req(Hash(1), Addr4(i), 5, bittorrent.EventStarted), 50) // leechers 10-12
	}
	resp := announce(t, s, Req(Hash(1), Addr4(0), 0, bittorrent.EventNone), 50)
	counts(t, resp, 10, 3)
	if resp.Peers.Len() != 3 {
		t.Fatalf("seeder got %d peers, want the 3 leechers", resp.Peers.Len())
	}
	for _, p := range resp.Peers.All() {
		if n := p.Addr().As4()[3]; n < 10 {
			t.Fatalf("seeder was given seeder %v", p)
		}
	}
}

func testLeechersGetAll(t *testing.T, s swarm.Store) {
	for i := range 3 {
		announce(t, s, Req(Hash(1), Addr4(i), 0, bittorrent.EventStarted), 50)
	}
	for i := 3; i < 6; i++ {
		announce(t, s, Req(Hash(1), Addr4(i), 5, bittorrent.EventStarted), 50)
	}
	resp := announce(t, s, Req(Hash(1), Addr4(5), 5, bittorrent.EventNone), 50)
	if resp.Peers.Len() != 5 {
		t.Fatalf("leecher got %d peers, want 5", resp.Peers.Len())
	}
	seen := map[netip.AddrPort]bool{}
	for _, p := range resp.Peers.All() {
		if seen[p] {
			t.Fatalf("peer %v returned twice", p)
		}
		seen[p] = true
	}
}

func testNumWant(t *testing.T, s swarm.Store) {
	for i := range 100 {
		announce(t, s, Req(Hash(1), Addr4(i), 5, bittorrent.EventStarted), 50)
	}
	for _, n := range []int{0, 1, 7, 99, 500} {
		resp := announce(t, s, Req(Hash(1), Addr4(1000), 5, bittorrent.EventNone), n)
		if want := min(n, 100); resp.Peers.Len() != want {
			t.Fatalf("numWant %d: got %d peers, want %d", n, resp.Peers.Len(), want)
		}
	}
	// Random start: over many announces, every peer gets handed out.
	seen := map[netip.AddrPort]bool{}
	for range 200 {
		for _, p := range announce(t, s, Req(Hash(1), Addr4(1000), 5, bittorrent.EventNone), 5).Peers.All() {
			seen[p] = true
		}
	}
	if len(seen) < 90 {
		t.Fatalf("200 announces of numwant 5 handed out only %d distinct peers of 100", len(seen))
	}
}

func testStopped(t *testing.T, s swarm.Store) {
	announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStarted), 50)
	announce(t, s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	resp := announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStopped), 50)
	counts(t, resp, 0, 1)
	resp = announce(t, s, Req(Hash(1), Addr4(3), 5, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(2) {
		t.Fatalf("after stop, peers = %v, want only %v", resp.Peers.All(), Addr4(2))
	}
}

func testStoppedUnknown(t *testing.T, s swarm.Store) {
	resp := announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStopped), 50)
	counts(t, resp, 0, 0)
	if st := totals(t, s); st.Seeders+st.Leechers != 0 {
		t.Fatalf("totals after lone stop = %+v, want no peers", st)
	}
}

func testCompleted(t *testing.T, s swarm.Store) {
	announce(t, s, Req(Hash(1), Addr4(1), 5, bittorrent.EventStarted), 50)
	announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventCompleted), 50)
	announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventCompleted), 50) // repeat: not a second download
	announce(t, s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	sc := scrape(t, s, Hash(1))
	want := bittorrent.Scrape{InfoHash: Hash(1), Complete: 1, Incomplete: 1, Downloaded: 1}
	if sc != want {
		t.Fatalf("Scrape = %+v, want %+v", sc, want)
	}
}

func testTransition(t *testing.T, s swarm.Store) {
	announce(t, s, Req(Hash(1), Addr4(1), 5, bittorrent.EventStarted), 50)
	counts(t, announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventNone), 50), 1, 0)
	counts(t, announce(t, s, Req(Hash(1), Addr4(1), 3, bittorrent.EventNone), 50), 0, 1)
	if st := totals(t, s); st.Seeders != 0 || st.Leechers != 1 || st.Torrents != 1 {
		t.Fatalf("totals = %+v, want 1 torrent, 0 seeders, 1 leecher", st)
	}
}

func testKeyedByAddr(t *testing.T, s swarm.Store) {
	victim := Req(Hash(1), Addr4(1), 5, bittorrent.EventStarted)
	announce(t, s, victim, 50)
	// An attacker elsewhere sends the victim's peer ID with event=stopped.
	forged := Req(Hash(1), Addr4(2), 5, bittorrent.EventStopped)
	forged.PeerID = victim.PeerID
	announce(t, s, forged, 50)
	resp := announce(t, s, Req(Hash(1), Addr4(3), 5, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(1) {
		t.Fatalf("victim gone after a forged stop: peers = %v", resp.Peers.All())
	}
	// The same address on another port is another peer.
	other := Req(Hash(1), netip.AddrPortFrom(Addr4(1).Addr(), 7000), 5, bittorrent.EventStarted)
	counts(t, announce(t, s, other, 50), 0, 3)
}

func testFamilies(t *testing.T, s swarm.Store) {
	announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStarted), 50)
	announce(t, s, Req(Hash(1), Addr6(1), 0, bittorrent.EventStarted), 50)
	r4 := announce(t, s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	r6 := announce(t, s, Req(Hash(1), Addr6(2), 5, bittorrent.EventStarted), 50)
	if r4.Peers.Len() != 1 || !r4.Peers.At(0).Addr().Is4() {
		t.Fatalf("ipv4 requester got %v, want the one ipv4 seeder", r4.Peers.All())
	}
	if r6.Peers.Len() != 1 || r6.Peers.At(0) != Addr6(1) {
		t.Fatalf("ipv6 requester got %v, want the one ipv6 seeder", r6.Peers.All())
	}
	counts(t, r6, 2, 2) // counts cover both families
}

func testMapped(t *testing.T, s swarm.Store) {
	mapped := netip.AddrPortFrom(netip.AddrFrom16(Addr4(1).Addr().As16()), 6881)
	announce(t, s, Req(Hash(1), mapped, 0, bittorrent.EventStarted), 50)
	resp := announce(t, s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(1) {
		t.Fatalf("peers = %v, want the mapped peer as plain ipv4 %v", resp.Peers.All(), Addr4(1))
	}
}

func testScrapeUnknown(t *testing.T, s swarm.Store) {
	if sc := scrape(t, s, Hash(9)); sc != (bittorrent.Scrape{InfoHash: Hash(9)}) {
		t.Fatalf("Scrape(unknown) = %+v, want zero counts", sc)
	}
}

func testScrapeBatch(t *testing.T, s swarm.Store) {
	announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStarted), 50)
	announce(t, s, Req(Hash(2), Addr4(1), 5, bittorrent.EventStarted), 50)
	announce(t, s, Req(Hash(2), Addr4(2), 5, bittorrent.EventStarted), 50)
	// Counts already in an entry (a reused slice) are overwritten.
	got := []bittorrent.Scrape{{InfoHash: Hash(2)}, {InfoHash: Hash(9), Complete: 7}, {InfoHash: Hash(1), Downloaded: 7}, {InfoHash: Hash(2)}}
	if err := s.Scrape(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	want := []bittorrent.Scrape{{InfoHash: Hash(2), Incomplete: 2}, {InfoHash: Hash(9)}, {InfoHash: Hash(1), Complete: 1}, {InfoHash: Hash(2), Incomplete: 2}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Scrape[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := s.Scrape(context.Background(), nil); err != nil {
		t.Fatalf("Scrape of no hashes: %v", err)
	}
}

func testScrapeAll(t *testing.T, s swarm.Store) {
	for i := range 50 {
		for j := range i%4 + 1 {
			announce(t, s, Req(Hash(i), Addr4(j), uint64(j%2), bittorrent.EventStarted), 50)
		}
	}
	got := totals(t, s)
	if got.Torrents != 50 {
		t.Fatalf("ScrapeAll saw %d torrents, want 50", got.Torrents)
	}
	eventually(t, s, "Stats agree with ScrapeAll's totals", func(st swarm.Stats) bool {
		return st.Torrents == got.Torrents && st.Seeders == got.Seeders && st.Leechers == got.Leechers
	})
	n := 0
	err := s.ScrapeAll(context.Background(), func(bittorrent.Scrape) bool { n++; return n < 3 })
	if err != nil || n != 3 {
		t.Fatalf("ScrapeAll with fn stopping at the 3rd call: %d calls, err %v; want 3 calls, nil", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ScrapeAll(ctx, func(bittorrent.Scrape) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Fatalf("ScrapeAll with a cancelled context = %v, want context.Canceled", err)
	}
}

func testLargeSwarm(t *testing.T, s swarm.Store) {
	const n = 500
	for i := range n {
		announce(t, s, Req(Hash(1), Addr4(i), uint64(i%3), bittorrent.EventStarted), 50)
	}
	for i := 0; i < n; i += 2 { // stop every other peer
		announce(t, s, Req(Hash(1), Addr4(i), uint64(i%3), bittorrent.EventStopped), 50)
	}
	for i := 1; i < n; i += 6 { // some leechers finish
		announce(t, s, Req(Hash(1), Addr4(i), 0, bittorrent.EventCompleted), 50)
	}
	var seeders, leechers uint32
	for i := 1; i < n; i += 2 {
		if i%3 == 0 || (i-1)%6 == 0 {
			seeders++
		} else {
			leechers++
		}
	}
	sc := scrape(t, s, Hash(1))
	if sc.Complete != seeders || sc.Incomplete != leechers {
		t.Fatalf("Scrape = %+v, want %d seeders %d leechers", sc, seeders, leechers)
	}
	resp := announce(t, s, Req(Hash(1), Addr4(1), 0, bittorrent.EventNone), 1000)
	if uint32(resp.Peers.Len()) != leechers {
		t.Fatalf("seeder got %d peers, want all %d leechers", resp.Peers.Len(), leechers)
	}
}

func testConcurrent(t *testing.T, s swarm.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var resp bittorrent.AnnounceResponse
			sc := make([]bittorrent.Scrape, 1)
			for i := range 500 {
				req := Req(Hash(i%20), Addr4(w*1000+i), uint64(i%2), bittorrent.EventStarted)
				err := s.Announce(ctx, req, 20, &resp, 0, swarm.Registered)
				if err == nil && i%5 == 0 {
					req.Event = bittorrent.EventStopped
					err = s.Announce(ctx, req, 0, &resp, 0, swarm.Registered)
				}
				if err == nil {
					sc[0] = bittorrent.Scrape{InfoHash: Hash(i % 20)}
					err = s.Scrape(ctx, sc)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := totals(t, s); st.Seeders+st.Leechers != 8*400 {
		t.Fatalf("totals = %+v, want %d peers", st, 8*400)
	}
}

// Config is swarm.DefaultConfig without re-announce throttling and with
// no bound on an address's ports, for tests and benchmarks that announce
// the same peer again and again and expect the whole answer each time, or
// play a swarm's peers from one loopback address.
func Config() swarm.Config {
	c := swarm.DefaultConfig()
	c.ThrottleInterval = 0
	c.MaxPeersPerAddress = c.MaxPeersPerTorrent
	return c
}

// testAdmission checks the admission handshake. Remembering a ticket is
// optional (a store may ask every time), but going ahead under a ticket
// the torrent was not admitted under, or recording anything while asking,
// is never allowed: that would let a revoked torrent through.
func testAdmission(t *testing.T, s swarm.Store) {
	ctx := context.Background()
	try := func(n int, ev bittorrent.Event, ticket uint32, admitted bool) error {
		t.Helper()
		resp := &bittorrent.AnnounceResponse{Complete: 99}
		adm := swarm.Undecided
		if admitted {
			adm = swarm.Registered
		}
		err := s.Announce(ctx, Req(Hash(1), Addr4(n), 5, ev), 50, resp, ticket, adm)
		switch {
		case errors.Is(err, swarm.ErrNotAdmitted):
			if admitted {
				t.Fatalf("peer %d, ticket %d: ErrNotAdmitted although admitted", n, ticket)
			}
			if resp.Complete != 99 || resp.Peers.Len() != 0 {
				t.Fatalf("peer %d, ticket %d: an unadmitted announce changed the response: %+v", n, ticket, resp)
			}
		case err != nil:
			t.Fatalf("peer %d, ticket %d: %v", n, ticket, err)
		}
		return err
	}
	wantPeers := func(want int) {
		t.Helper()
		if st := totals(t, s); st.Seeders+st.Leechers != want {
			t.Fatalf("totals = %+v, want %d peers", st, want)
		}
	}

	for _, ev := range []bittorrent.Event{bittorrent.EventStarted, bittorrent.EventStopped} {
		if err := try(1, ev, 1, false); !errors.Is(err, swarm.ErrNotAdmitted) {
			t.Fatalf("unknown torrent, event %v, not admitted: %v, want ErrNotAdmitted", ev, err)
		}
	}
	if st := totals(t, s); st != (swarm.Stats{}) {
		t.Fatalf("an unadmitted torrent is stored: %+v", st)
	}
	try(1, bittorrent.EventStarted, 1, true)
	wantPeers(1)
	peers := 1
	if try(2, bittorrent.EventStarted, 1, false) == nil { // the same ticket: the store may remember it
		peers++
	}
	wantPeers(peers)
	if err := try(3, bittorrent.EventStarted, 2, false); !errors.Is(err, swarm.ErrNotAdmitted) {
		t.Fatalf("torrent admitted under ticket 1, asked under 2: %v, want ErrNotAdmitted", err)
	}
	wantPeers(peers)
	try(3, bittorrent.EventStarted, 2, true)
	wantPeers(peers + 1)
}
