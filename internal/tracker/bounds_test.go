package tracker

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
)

// boundedTracker returns a tracker in mode over a store holding at most
// two torrents, one created by each network, and two ports per address.
func boundedTracker(t *testing.T, mode Mode, reg Registry) *Tracker {
	t.Helper()
	scfg := swarmtest.Config()
	scfg.MaxTorrents, scfg.MaxTorrentsPerPrefix, scfg.MaxPeersPerAddress = 2, 1, 2
	if err := scfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Mode = mode
	cfg.AbuseContact = "abuse@example.org"
	return New(memswarm.New(scfg), reg, cfg, slog.New(slog.DiscardHandler))
}

func peerAt(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}

// TestBoundAnswers: what a client is told when the store's bounds refuse
// it. A new torrent gets a well-formed refusal with a long interval: the
// normal announce interval when the table is full (it eases as swarms
// expire), the refusal interval when the client's network created its
// share. A port past its address's share is answered, but not recorded.
func TestBoundAnswers(t *testing.T) {
	tr := boundedTracker(t, ModeOpen, nil)
	ctx := context.Background()
	announce := func(ih bittorrent.InfoHash, src netip.AddrPort, left uint64) (*bittorrent.AnnounceResponse, error) {
		var resp bittorrent.AnnounceResponse
		err := tr.Announce(ctx, swarmtest.Req(ih, src, left, bittorrent.EventStarted), &resp)
		return &resp, err
	}
	if _, err := announce(swarmtest.Hash(1), peerAt("192.0.2.1", 1), 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		ih           bittorrent.InfoHash
		src          netip.AddrPort
		wantReason   string
		wantInterval time.Duration
	}{
		{"network's share used", swarmtest.Hash(2), peerAt("192.0.2.9", 1), "too many torrents from your network; contact abuse@example.org", tr.cfg.RefusalInterval},
		{"another network", swarmtest.Hash(2), peerAt("198.51.100.1", 1), "", 0},
		{"table full", swarmtest.Hash(3), peerAt("203.0.113.1", 1), "tracker full: no new torrents for now; contact abuse@example.org", tr.cfg.AnnounceInterval},
	}
	for _, tt := range tests {
		_, err := announce(tt.ih, tt.src, 5)
		if tt.wantReason == "" {
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			continue
		}
		var ref *bittorrent.Refusal
		if !errors.As(err, &ref) || ref.Reason != tt.wantReason || ref.Interval != tt.wantInterval {
			t.Fatalf("%s: %#v, want a refusal %q with interval %v", tt.name, err, tt.wantReason, tt.wantInterval)
		}
	}
	// The live torrents still take new peers, and a third port of one
	// address is answered with the swarm but left out of it.
	for port := uint16(1); port <= 3; port++ {
		resp, err := announce(swarmtest.Hash(1), peerAt("203.0.113.1", port), 5)
		if err != nil || resp.Interval != tr.cfg.AnnounceInterval || resp.Peers.Len() != int(port) {
			t.Fatalf("port %d in a live torrent: %+v, %v; want the %d peers held, the normal interval", port, resp, err, port)
		}
		if want := uint32(min(port, 2)); resp.Incomplete != want {
			t.Fatalf("port %d: %d leechers, want %d", port, resp.Incomplete, want)
		}
	}
	st := tr.Store().Stats()
	if st.Torrents != 2 || st.RefusedFull != 1 || st.RefusedPrefix != 1 || st.UnrecordedAddressFull != 1 {
		t.Fatalf("Stats = %+v, want 2 torrents, 1 refused for each bound, 1 port not recorded", st)
	}
}

// TestRegisteredTorrentsCostNoShare: in allowlist and denylist mode a
// registered torrent is not charged to the network that creates it in the
// store, so a seedbox can seed a whole catalogue; an unregistered one in
// denylist mode is.
func TestRegisteredTorrentsCostNoShare(t *testing.T) {
	for _, mode := range []Mode{ModeAllowlist, ModeDenylist} {
		t.Run(mode.String(), func(t *testing.T) {
			reg := &mapRegistry{state: map[bittorrent.InfoHash]bool{swarmtest.Hash(1): true, swarmtest.Hash(2): true}}
			tr := boundedTracker(t, mode, reg)
			var resp bittorrent.AnnounceResponse
			for _, n := range []int{1, 2} {
				if err := tr.Announce(context.Background(), swarmtest.Req(swarmtest.Hash(n), peerAt("192.0.2.1", 1), 0, bittorrent.EventStarted), &resp); err != nil {
					t.Fatalf("registered torrent %d from one network: %v", n, err)
				}
			}
			if mode == ModeAllowlist {
				return
			}
			tr = boundedTracker(t, mode, reg)
			announce := func(n int) error {
				return tr.Announce(context.Background(), swarmtest.Req(swarmtest.Hash(n), peerAt("192.0.2.1", 1), 0, bittorrent.EventStarted), &resp)
			}
			if err := announce(9); err != nil {
				t.Fatalf("an unregistered torrent: %v", err)
			}
			if err := announce(8); err != tr.prefixAnswer {
				t.Fatalf("a 2nd unregistered torrent from one network: %v, want %v", err, tr.prefixAnswer)
			}
			if err := announce(1); err != nil {
				t.Fatalf("a registered torrent from that network: %v", err)
			}
		})
	}
}
