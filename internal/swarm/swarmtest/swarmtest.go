// Package swarmtest is the contract every swarm.Store must pass, and the
// benchmarks that compare stores. A store's own tests call Run and Bench.
package swarmtest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
)

// Run checks store behaviour every implementation must share. newStore
// returns a fresh, empty store for each subtest.
func Run(t *testing.T, newStore func() swarm.Store) {
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
		{"scrape all and stats agree", testScrapeAll},
		{"large swarm stays consistent", testLargeSwarm},
		{"concurrent announces", testConcurrent},
		{"admission is asked once per ticket", testAdmission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore()) })
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

func announce(s swarm.Store, req *bittorrent.AnnounceRequest, numWant int) *bittorrent.AnnounceResponse {
	var resp bittorrent.AnnounceResponse
	s.Announce(req, numWant, &resp, 0, nil)
	return &resp
}

func counts(t *testing.T, resp *bittorrent.AnnounceResponse, seeders, leechers uint32) {
	t.Helper()
	if resp.Complete != seeders || resp.Incomplete != leechers {
		t.Fatalf("complete/incomplete = %d/%d, want %d/%d", resp.Complete, resp.Incomplete, seeders, leechers)
	}
}

func testFirstAnnounce(t *testing.T, s swarm.Store) {
	resp := announce(s, Req(Hash(1), Addr4(1), 100, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 0 {
		t.Fatalf("got %d peers, want 0", resp.Peers.Len())
	}
	counts(t, resp, 0, 1)
}

func testNoSelf(t *testing.T, s swarm.Store) {
	for i := range 5 {
		announce(s, Req(Hash(1), Addr4(i), 100, bittorrent.EventStarted), 50)
	}
	for range 20 {
		resp := announce(s, Req(Hash(1), Addr4(2), 100, bittorrent.EventNone), 50)
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
		announce(s, Req(Hash(1), Addr4(i), 0, bittorrent.EventStarted), 50) // seeders 0-9
	}
	for i := 10; i < 13; i++ {
		announce(s, Req(Hash(1), Addr4(i), 5, bittorrent.EventStarted), 50) // leechers 10-12
	}
	resp := announce(s, Req(Hash(1), Addr4(0), 0, bittorrent.EventNone), 50)
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
		announce(s, Req(Hash(1), Addr4(i), 0, bittorrent.EventStarted), 50)
	}
	for i := 3; i < 6; i++ {
		announce(s, Req(Hash(1), Addr4(i), 5, bittorrent.EventStarted), 50)
	}
	resp := announce(s, Req(Hash(1), Addr4(5), 5, bittorrent.EventNone), 50)
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
		announce(s, Req(Hash(1), Addr4(i), 5, bittorrent.EventStarted), 50)
	}
	for _, n := range []int{0, 1, 7, 99, 500} {
		resp := announce(s, Req(Hash(1), Addr4(1000), 5, bittorrent.EventNone), n)
		if want := min(n, 100); resp.Peers.Len() != want {
			t.Fatalf("numWant %d: got %d peers, want %d", n, resp.Peers.Len(), want)
		}
	}
	// Random start: over many announces, every peer gets handed out.
	seen := map[netip.AddrPort]bool{}
	for range 200 {
		for _, p := range announce(s, Req(Hash(1), Addr4(1000), 5, bittorrent.EventNone), 5).Peers.All() {
			seen[p] = true
		}
	}
	if len(seen) < 90 {
		t.Fatalf("200 announces of numwant 5 handed out only %d distinct peers of 100", len(seen))
	}
}

func testStopped(t *testing.T, s swarm.Store) {
	announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStarted), 50)
	announce(s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	resp := announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStopped), 50)
	counts(t, resp, 0, 1)
	resp = announce(s, Req(Hash(1), Addr4(3), 5, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(2) {
		t.Fatalf("after stop, peers = %v, want only %v", resp.Peers.All(), Addr4(2))
	}
}

func testStoppedUnknown(t *testing.T, s swarm.Store) {
	resp := announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStopped), 50)
	counts(t, resp, 0, 0)
	if st := s.Stats(); st.Seeders+st.Leechers != 0 {
		t.Fatalf("stats after lone stop = %+v, want no peers", st)
	}
}

func testCompleted(t *testing.T, s swarm.Store) {
	announce(s, Req(Hash(1), Addr4(1), 5, bittorrent.EventStarted), 50)
	announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventCompleted), 50)
	announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventCompleted), 50) // repeat: not a second download
	announce(s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	sc := s.Scrape(Hash(1))
	want := bittorrent.Scrape{InfoHash: Hash(1), Complete: 1, Incomplete: 1, Downloaded: 1}
	if sc != want {
		t.Fatalf("Scrape = %+v, want %+v", sc, want)
	}
}

func testTransition(t *testing.T, s swarm.Store) {
	announce(s, Req(Hash(1), Addr4(1), 5, bittorrent.EventStarted), 50)
	counts(t, announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventNone), 50), 1, 0)
	counts(t, announce(s, Req(Hash(1), Addr4(1), 3, bittorrent.EventNone), 50), 0, 1)
	if st := s.Stats(); st.Seeders != 0 || st.Leechers != 1 || st.Torrents != 1 {
		t.Fatalf("Stats = %+v, want 1 torrent, 0 seeders, 1 leecher", st)
	}
}

func testKeyedByAddr(t *testing.T, s swarm.Store) {
	victim := Req(Hash(1), Addr4(1), 5, bittorrent.EventStarted)
	announce(s, victim, 50)
	// An attacker elsewhere sends the victim's peer ID with event=stopped.
	forged := Req(Hash(1), Addr4(2), 5, bittorrent.EventStopped)
	forged.PeerID = victim.PeerID
	announce(s, forged, 50)
	resp := announce(s, Req(Hash(1), Addr4(3), 5, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(1) {
		t.Fatalf("victim gone after a forged stop: peers = %v", resp.Peers.All())
	}
	// The same address on another port is another peer.
	other := Req(Hash(1), netip.AddrPortFrom(Addr4(1).Addr(), 7000), 5, bittorrent.EventStarted)
	counts(t, announce(s, other, 50), 0, 3)
}

func testFamilies(t *testing.T, s swarm.Store) {
	announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventStarted), 50)
	announce(s, Req(Hash(1), Addr6(1), 0, bittorrent.EventStarted), 50)
	r4 := announce(s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	r6 := announce(s, Req(Hash(1), Addr6(2), 5, bittorrent.EventStarted), 50)
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
	announce(s, Req(Hash(1), mapped, 0, bittorrent.EventStarted), 50)
	resp := announce(s, Req(Hash(1), Addr4(2), 5, bittorrent.EventStarted), 50)
	if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(1) {
		t.Fatalf("peers = %v, want the mapped peer as plain ipv4 %v", resp.Peers.All(), Addr4(1))
	}
}

func testScrapeUnknown(t *testing.T, s swarm.Store) {
	if sc := s.Scrape(Hash(9)); sc != (bittorrent.Scrape{InfoHash: Hash(9)}) {
		t.Fatalf("Scrape(unknown) = %+v, want zero counts", sc)
	}
}

func testScrapeAll(t *testing.T, s swarm.Store) {
	for i := range 50 {
		for j := range i%4 + 1 {
			announce(s, Req(Hash(i), Addr4(j), uint64(j%2), bittorrent.EventStarted), 50)
		}
	}
	var got swarm.Stats
	s.ScrapeAll(func(sc bittorrent.Scrape) bool {
		got.Torrents++
		got.Seeders += int(sc.Complete)
		got.Leechers += int(sc.Incomplete)
		return true
	})
	if st := s.Stats(); st != got || st.Torrents != 50 {
		t.Fatalf("Stats = %+v, ScrapeAll totals = %+v, want equal with 50 torrents", st, got)
	}
	n := 0
	s.ScrapeAll(func(bittorrent.Scrape) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("ScrapeAll went on after fn returned false: %d calls", n)
	}
}

func testLargeSwarm(t *testing.T, s swarm.Store) {
	const n = 500
	for i := range n {
		announce(s, Req(Hash(1), Addr4(i), uint64(i%3), bittorrent.EventStarted), 50)
	}
	for i := 0; i < n; i += 2 { // stop every other peer
		announce(s, Req(Hash(1), Addr4(i), uint64(i%3), bittorrent.EventStopped), 50)
	}
	for i := 1; i < n; i += 6 { // some leechers finish
		announce(s, Req(Hash(1), Addr4(i), 0, bittorrent.EventCompleted), 50)
	}
	var seeders, leechers uint32
	for i := 1; i < n; i += 2 {
		if i%3 == 0 || (i-1)%6 == 0 {
			seeders++
		} else {
			leechers++
		}
	}
	sc := s.Scrape(Hash(1))
	if sc.Complete != seeders || sc.Incomplete != leechers {
		t.Fatalf("Scrape = %+v, want %d seeders %d leechers", sc, seeders, leechers)
	}
	resp := announce(s, Req(Hash(1), Addr4(1), 0, bittorrent.EventNone), 1000)
	if uint32(resp.Peers.Len()) != leechers {
		t.Fatalf("seeder got %d peers, want all %d leechers", resp.Peers.Len(), leechers)
	}
}

func testConcurrent(t *testing.T, s swarm.Store) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var resp bittorrent.AnnounceResponse
			for i := range 500 {
				req := Req(Hash(i%20), Addr4(w*1000+i), uint64(i%2), bittorrent.EventStarted)
				s.Announce(req, 20, &resp, 0, nil)
				if i%5 == 0 {
					req.Event = bittorrent.EventStopped
					s.Announce(req, 0, &resp, 0, nil)
				}
				s.Scrape(Hash(i % 20))
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Seeders+st.Leechers != 8*400 {
		t.Fatalf("Stats = %+v, want %d peers", st, 8*400)
	}
}

// Config is swarm.DefaultConfig without re-announce throttling, for tests
// and benchmarks that announce the same peer again and again and expect
// the whole answer each time.
func Config() swarm.Config {
	c := swarm.DefaultConfig()
	c.ThrottleInterval = 0
	return c
}

func testAdmission(t *testing.T, s swarm.Store) {
	asked, verdict := 0, false
	admit := func(ih bittorrent.InfoHash) bool {
		if ih != Hash(1) {
			t.Errorf("admit asked about %v, want %v", ih, Hash(1))
		}
		asked++
		return verdict
	}
	try := func(n int, ticket uint32, wantOK bool, wantAsked int) *bittorrent.AnnounceResponse {
		t.Helper()
		resp := &bittorrent.AnnounceResponse{Complete: 99}
		asked = 0
		ok := s.Announce(Req(Hash(1), Addr4(n), 5, bittorrent.EventStarted), 50, resp, ticket, admit)
		if ok != wantOK || asked != wantAsked {
			t.Fatalf("peer %d, ticket %d: ok %v after %d admission checks; want %v after %d", n, ticket, ok, asked, wantOK, wantAsked)
		}
		if !ok && resp.Complete != 99 {
			t.Fatalf("a refused announce changed the response: %+v", resp)
		}
		return resp
	}

	try(1, 1, false, 1) // refused: nothing recorded
	if st := s.Stats(); st != (swarm.Stats{}) {
		t.Fatalf("a refused torrent is stored: %+v", st)
	}
	verdict = true
	try(1, 1, true, 1)
	try(2, 1, true, 0) // same ticket: not asked again
	counts(t, try(3, 1, true, 0), 0, 3)
	verdict = false
	try(4, 2, false, 1) // new ticket: asked, and refused
	try(4, 2, false, 1) // still refused, so asked each time
	verdict = true
	counts(t, try(4, 2, true, 1), 0, 4)
	try(5, 2, true, 0)
	if !s.Announce(Req(Hash(1), Addr4(6), 5, bittorrent.EventStarted), 50, &bittorrent.AnnounceResponse{}, 3, nil) {
		t.Fatal("a nil admit refused")
	}
}
