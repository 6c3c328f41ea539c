package swarmtest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
)

// The bounds of swarm.Config: every store refuses what is new past them
// and keeps what it holds.

// try announces req admitted as adm and returns the error and the response,
// which starts out holding a marker (Complete 99) so that a test can see
// whether a refused announce touched it.
func try(t *testing.T, s swarm.Store, req *bittorrent.AnnounceRequest, adm swarm.Admission) (*bittorrent.AnnounceResponse, error) {
	t.Helper()
	resp := &bittorrent.AnnounceResponse{Complete: 99}
	err := s.Announce(context.Background(), req, 50, resp, 0, adm)
	if err != nil && (resp.Complete != 99 || resp.Peers.Len() != 0) {
		t.Fatalf("announce refused with %v changed the response: %+v", err, resp)
	}
	return resp, err
}

// eventually waits up to 10 s for Stats, which may lag by a store's refresh
// period, to satisfy ok.
func eventually(t *testing.T, s swarm.Store, what string, ok func(swarm.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st := s.Stats(); !ok(st); st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v: want %s", st, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addr returns the contact address ip:port.
func addr(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}

// testMaxTorrents: with MaxTorrents 3, a fourth torrent is refused with
// ErrFull, however it was admitted, and nothing of it is kept; the three
// live torrents take new peers and answer as before.
func testMaxTorrents(t *testing.T, s swarm.Store) {
	for i := range 3 {
		announce(t, s, Req(Hash(i), Addr4(i), 5, bittorrent.EventStarted), 50)
	}
	for _, adm := range []swarm.Admission{swarm.Registered, swarm.Unlisted} {
		if _, err := try(t, s, Req(Hash(3), Addr4(9), 5, bittorrent.EventStarted), adm); !errors.Is(err, swarm.ErrFull) {
			t.Fatalf("a 4th torrent (admitted %d) with max_torrents 3: %v, want ErrFull", adm, err)
		}
	}
	// A stop for a torrent the store does not hold records nothing, so it
	// is not refused.
	if resp, err := try(t, s, Req(Hash(3), Addr4(9), 5, bittorrent.EventStopped), swarm.Registered); err != nil || resp.Complete+resp.Incomplete != 0 {
		t.Fatalf("stop for an unknown torrent in a full table: %+v, %v; want zero counts, nil", resp, err)
	}
	for i := range 3 {
		resp, err := try(t, s, Req(Hash(i), Addr4(100+i), 0, bittorrent.EventStarted), swarm.Unlisted)
		if err != nil {
			t.Fatalf("new peer in live torrent %d of a full table: %v", i, err)
		}
		if resp.Peers.Len() != 1 || resp.Peers.At(0) != Addr4(i) {
			t.Fatalf("live torrent %d answered %v, want its leecher %v", i, resp.Peers.All(), Addr4(i))
		}
	}
	if sc := scrape(t, s, Hash(3)); sc.Complete+sc.Incomplete != 0 {
		t.Fatalf("the refused torrent is stored: %+v", sc)
	}
	if st := totals(t, s); st.Torrents != 3 || st.Seeders != 3 || st.Leechers != 3 {
		t.Fatalf("totals = %+v, want the 3 torrents, each with a seeder and a leecher", st)
	}
	eventually(t, s, "2 refused for a full table", func(st swarm.Stats) bool { return st.RefusedFull == 2 })
}

// testPerPrefix: with MaxTorrentsPerPrefix 2, a network (IPv4 /24, IPv6
// /48) that created two torrents anyone may create is refused a third
// with ErrPrefixFull; it may still join torrents, other networks may
// still create, and registered torrents are not charged to it.
func testPerPrefix(t *testing.T, s swarm.Store) {
	tests := []struct {
		name         string
		net, sibling string // two addresses in one network
		other        string // an address in the next network
	}{
		{"ipv4 /24", "192.0.2.1", "192.0.2.254", "192.0.3.1"},
		{"ipv6 /48", "2001:db8:1::1", "2001:db8:1:ffff::9", "2001:db8:2::1"},
	}
	for n, tt := range tests {
		ih := func(i int) bittorrent.InfoHash { return Hash(1000*n + i) }
		for i := range 2 {
			if _, err := try(t, s, Req(ih(i), addr(tt.net, 6881), 5, bittorrent.EventStarted), swarm.Unlisted); err != nil {
				t.Fatalf("%s: torrent %d of 2: %v", tt.name, i, err)
			}
		}
		if _, err := try(t, s, Req(ih(2), addr(tt.sibling, 6881), 5, bittorrent.EventStarted), swarm.Unlisted); !errors.Is(err, swarm.ErrPrefixFull) {
			t.Fatalf("%s: a 3rd torrent from %s: %v, want ErrPrefixFull", tt.name, tt.sibling, err)
		}
		if sc := scrape(t, s, ih(2)); sc.Complete+sc.Incomplete != 0 {
			t.Fatalf("%s: the refused torrent is stored: %+v", tt.name, sc)
		}
		for _, c := range []struct {
			what string
			req  *bittorrent.AnnounceRequest
			adm  swarm.Admission
		}{
			{"joining a torrent another network created", Req(ih(0), addr(tt.sibling, 6881), 5, bittorrent.EventStarted), swarm.Unlisted},
			{"a registered torrent", Req(ih(3), addr(tt.sibling, 6881), 5, bittorrent.EventStarted), swarm.Registered},
			{"another network's new torrent", Req(ih(4), addr(tt.other, 6881), 5, bittorrent.EventStarted), swarm.Unlisted},
		} {
			if _, err := try(t, s, c.req, c.adm); err != nil {
				t.Fatalf("%s: %s: %v", tt.name, c.what, err)
			}
		}
	}
	if st := totals(t, s); st.Torrents != 8 {
		t.Fatalf("totals = %+v, want 8 torrents", st)
	}
	eventually(t, s, "2 refused for their network", func(st swarm.Stats) bool { return st.RefusedPrefix == 2 })
}

// testPerAddress: with MaxPeersPerAddress 2, a third port of one address
// (an IPv6 /64) is answered with the counts and peers but not recorded, so
// no reply ever carries more than two of its ports; once one of its
// peers stops, another port may take its place.
func testPerAddress(t *testing.T, s swarm.Store) {
	tests := []struct {
		name        string
		host, other string // other is another host
		sibling     string // another address of host's /64 ("" for IPv4)
	}{
		{"ipv4", "192.0.2.7", "192.0.2.8", ""},
		{"ipv6 /64", "2001:db8::7", "2001:db8:0:1::7", "2001:db8::ffff:8"},
	}
	for n, tt := range tests {
		ih := Hash(n)
		announce(t, s, Req(ih, addr(tt.other, 6881), 0, bittorrent.EventStarted), 50) // a seeder elsewhere
		for port := uint16(1); port <= 2; port++ {
			announce(t, s, Req(ih, addr(tt.host, port), 5, bittorrent.EventStarted), 50)
		}
		crowd := []netip.AddrPort{addr(tt.host, 3), addr(tt.host, 4)}
		if tt.sibling != "" {
			crowd = append(crowd, addr(tt.sibling, 1))
		}
		for _, a := range crowd {
			resp, err := try(t, s, Req(ih, a, 5, bittorrent.EventStarted), swarm.Unlisted)
			if err != nil {
				t.Fatalf("%s: port past the bound, %v: %v, want an answer", tt.name, a, err)
			}
			if resp.Complete != 1 || resp.Incomplete != 2 || resp.Peers.Len() != 3 {
				t.Fatalf("%s: %v got %d/%d and %v; want the counts 1/2 and the 3 peers held", tt.name, a, resp.Complete, resp.Incomplete, resp.Peers.All())
			}
		}
		// However many ports it tried, a seeder's reply holds two of them.
		resp := announce(t, s, Req(ih, addr(tt.other, 6881), 0, bittorrent.EventNone), 50)
		if resp.Peers.Len() != 2 {
			t.Fatalf("%s: the seeder got %v, want the host's 2 recorded ports", tt.name, resp.Peers.All())
		}
		announce(t, s, Req(ih, addr(tt.host, 1), 5, bittorrent.EventStopped), 50)
		if resp := announce(t, s, Req(ih, crowd[len(crowd)-1], 5, bittorrent.EventStarted), 50); resp.Incomplete != 2 {
			t.Fatalf("%s: after a stop, %v got counts %d/%d, want it recorded as the 2nd leecher", tt.name, crowd[len(crowd)-1], resp.Complete, resp.Incomplete)
		}
	}
	eventually(t, s, "5 announces not recorded for their address", func(st swarm.Stats) bool { return st.UnrecordedAddressFull == 5 })
}

// testPerTorrent: with MaxPeersPerTorrent 5, a sixth peer gets the counts
// and the five peers but is not recorded, in either family; the peers it
// holds keep announcing, and a stop makes room.
func testPerTorrent(t *testing.T, s swarm.Store) {
	for i := range 4 {
		announce(t, s, Req(Hash(1), Addr4(i), uint64(i%2), bittorrent.EventStarted), 50)
	}
	announce(t, s, Req(Hash(1), Addr6(1), 0, bittorrent.EventStarted), 50)
	for _, a := range []netip.AddrPort{Addr4(10), Addr6(10)} {
		resp, err := try(t, s, Req(Hash(1), a, 5, bittorrent.EventStarted), swarm.Unlisted)
		if err != nil {
			t.Fatalf("6th peer %v: %v, want an answer", a, err)
		}
		if resp.Complete != 3 || resp.Incomplete != 2 {
			t.Fatalf("6th peer %v got counts %d/%d, want the 5 held: 3/2", a, resp.Complete, resp.Incomplete)
		}
		if want := map[bool]int{true: 4, false: 1}[a.Addr().Is4()]; resp.Peers.Len() != want {
			t.Fatalf("6th peer %v got %v, want the %d peers of its family", a, resp.Peers.All(), want)
		}
	}
	// A seeder past the bound is given only leechers, as any seeder.
	resp, err := try(t, s, Req(Hash(1), Addr4(11), 0, bittorrent.EventStarted), swarm.Unlisted)
	if err != nil || resp.Peers.Len() != 2 {
		t.Fatalf("a seeder past the bound got %v, %v; want the 2 leechers", resp.Peers.All(), err)
	}
	counts(t, announce(t, s, Req(Hash(1), Addr4(1), 1, bittorrent.EventNone), 50), 3, 2)
	if st := totals(t, s); st.Seeders+st.Leechers != 5 {
		t.Fatalf("totals = %+v, want the 5 peers held", st)
	}
	announce(t, s, Req(Hash(1), Addr4(1), 1, bittorrent.EventStopped), 50)
	counts(t, announce(t, s, Req(Hash(1), Addr4(10), 5, bittorrent.EventStarted), 50), 3, 2)
	eventually(t, s, "3 announces not recorded for a full swarm", func(st swarm.Stats) bool { return st.UnrecordedSwarmFull == 3 })
}
