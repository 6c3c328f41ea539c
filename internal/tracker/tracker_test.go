package tracker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
)

func newTracker(t testing.TB) *Tracker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DefaultNumWant, cfg.MaxNumWant, cfg.MaxScrapeHashes = 5, 8, 3
	cfg.Mode = ModeOpen
	return New(memswarm.New(swarmtest.Config()), nil, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestAnnounceNumWant(t *testing.T) {
	tests := []struct {
		name    string
		numWant int32
		event   bittorrent.Event
		want    int
	}{
		{"default when absent", -1, bittorrent.EventNone, 5},
		{"asked for fewer", 2, bittorrent.EventNone, 2},
		{"zero", 0, bittorrent.EventNone, 0},
		{"clamped to max", 500, bittorrent.EventNone, 8},
		{"stopped gets none", 50, bittorrent.EventStopped, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t)
			var resp bittorrent.AnnounceResponse
			for i := range 20 {
				if err := tr.Announce(context.Background(), swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), 0, bittorrent.EventStarted), &resp); err != nil {
					t.Fatal(err)
				}
			}
			req := swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(100), 10, tt.event)
			req.NumWant = tt.numWant
			if err := tr.Announce(context.Background(), req, &resp); err != nil {
				t.Fatalf("Announce: %v", err)
			}
			if resp.Peers.Len() != tt.want {
				t.Fatalf("numwant %d event %v: got %d peers, want %d", tt.numWant, tt.event, resp.Peers.Len(), tt.want)
			}
			if resp.Interval != tr.cfg.AnnounceInterval || resp.MinInterval != tr.cfg.MinAnnounceInterval {
				t.Fatalf("intervals = %v/%v, want %v/%v", resp.Interval, resp.MinInterval, tr.cfg.AnnounceInterval, tr.cfg.MinAnnounceInterval)
			}
		})
	}
}

func TestAnnouncePortZero(t *testing.T) {
	tr := newTracker(t)
	req := swarmtest.Req(swarmtest.Hash(1), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 0), 0, bittorrent.EventStarted)
	var resp bittorrent.AnnounceResponse
	err := tr.Announce(context.Background(), req, &resp)
	var ce bittorrent.ClientError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidPort) {
		t.Fatalf("Announce(port 0) = %v, want ErrInvalidPort", err)
	}
	if st := tr.Store().Stats(); st.Torrents != 0 {
		t.Fatalf("rejected announce was stored: %+v", st)
	}
}

func TestScrape(t *testing.T) {
	tr := newTracker(t)
	var resp bittorrent.AnnounceResponse
	tr.Announce(context.Background(), swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 0, bittorrent.EventStarted), &resp)
	tr.Announce(context.Background(), swarmtest.Req(swarmtest.Hash(2), swarmtest.Addr4(1), 9, bittorrent.EventStarted), &resp)
	hashes := []bittorrent.InfoHash{swarmtest.Hash(2), swarmtest.Hash(3), swarmtest.Hash(1)}
	got, err := tr.Scrape(context.Background(), netip.Addr{}, hashes, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []bittorrent.Scrape{
		{InfoHash: swarmtest.Hash(2), Incomplete: 1},
		{InfoHash: swarmtest.Hash(3)},
		{InfoHash: swarmtest.Hash(1), Complete: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Scrape = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Scrape[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := tr.Scrape(context.Background(), netip.Addr{}, append(hashes, swarmtest.Hash(4)), nil); !errors.Is(err, ErrTooManyHashes) {
		t.Fatalf("Scrape of 4 hashes with max 3 = %v, want ErrTooManyHashes", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	bad := DefaultConfig()
	bad.MinAnnounceInterval = 2 * bad.AnnounceInterval
	if err := bad.Validate(); err == nil {
		t.Fatal("min interval above interval accepted")
	}
	bad = DefaultConfig()
	bad.DefaultNumWant = bad.MaxNumWant + 1
	if err := bad.Validate(); err == nil {
		t.Fatal("default numwant above max accepted")
	}
}
