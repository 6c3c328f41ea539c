package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
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

// mapRegistry is a Registry held in a map: true for an active torrent,
// false for a revoked one, absent for one never registered.
type mapRegistry struct {
	gen   uint64
	state map[bittorrent.InfoHash]bool
	calls int // Status lookups
}

func (r *mapRegistry) Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string) {
	r.calls++
	active, ok := r.state[ih]
	return ok, ok && !active, ""
}

func (r *mapRegistry) Generation() uint64 { return r.gen }

// set changes a torrent's state and moves the generation on, as the
// registry does on every change.
func (r *mapRegistry) set(ih bittorrent.InfoHash, active bool) {
	r.state[ih] = active
	r.gen++
}

var errDown = errors.New("swarm store unreachable")

// netStore behaves as a network store may: it remembers no admission
// tickets, so it asks on every announce, and while down every call fails.
type netStore struct {
	swarm.Store
	down bool
}

func (s *netStore) Announce(ctx context.Context, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse, ticket uint32, adm swarm.Admission) error {
	switch {
	case s.down:
		return errDown
	case adm == swarm.Undecided:
		return swarm.ErrNotAdmitted
	}
	return s.Store.Announce(ctx, req, numWant, resp, ticket, adm)
}

func (s *netStore) Scrape(ctx context.Context, sc []bittorrent.Scrape) error {
	if s.down {
		return errDown
	}
	return s.Store.Scrape(ctx, sc)
}

func (s *netStore) ScrapeAll(ctx context.Context, fn func(bittorrent.Scrape) bool) error {
	if !s.down {
		return s.Store.ScrapeAll(ctx, fn)
	}
	// Fail part way, after fn has seen one torrent.
	s.Store.ScrapeAll(ctx, func(sc bittorrent.Scrape) bool { fn(sc); return false })
	return errDown
}

func newAllowlistTracker(store swarm.Store, reg Registry) *Tracker {
	cfg := DefaultConfig()
	cfg.Mode = ModeAllowlist
	return New(store, reg, cfg, slog.New(slog.DiscardHandler))
}

// TestRegistryLookups counts what each announce costs the registry: one
// lookup per torrent and registry generation while admitted, and one per
// refusal.
func TestRegistryLookups(t *testing.T) {
	ih := swarmtest.Hash(1)
	reg := &mapRegistry{state: map[bittorrent.InfoHash]bool{ih: true}}
	tr := newAllowlistTracker(memswarm.New(swarmtest.Config()), reg)
	ctx := context.Background()
	lookups := func(n int, want int, wantRefused bool) {
		t.Helper()
		before := reg.calls
		for i := range n {
			var resp bittorrent.AnnounceResponse
			err := tr.Announce(ctx, swarmtest.Req(ih, swarmtest.Addr4(i), 1, bittorrent.EventNone), &resp)
			if _, refused := err.(*bittorrent.Refusal); refused != wantRefused || (err != nil && !refused) {
				t.Fatalf("announce %d: %v, want refused %v", i, err, wantRefused)
			}
		}
		if got := reg.calls - before; got != want {
			t.Fatalf("%d announces cost %d registry lookups, want %d", n, got, want)
		}
	}
	lookups(100, 1, false)
	reg.set(swarmtest.Hash(2), true) // any change moves the generation
	lookups(100, 1, false)
	reg.set(ih, false)
	lookups(5, 5, true)
	reg.set(ih, true)
	lookups(100, 1, false)
}

// TestStoreThatAsksEveryTime: with a store that remembers no tickets, the
// tracker looks each announce up in the registry, and the policy holds.
func TestStoreThatAsksEveryTime(t *testing.T) {
	reg := &mapRegistry{state: map[bittorrent.InfoHash]bool{swarmtest.Hash(1): true}}
	tr := newAllowlistTracker(&netStore{Store: memswarm.New(swarmtest.Config())}, reg)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	for i := range 10 {
		if err := tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), 1, bittorrent.EventStarted), &resp); err != nil {
			t.Fatal(err)
		}
	}
	if reg.calls != 10 || resp.Incomplete != 10 {
		t.Fatalf("10 announces: %d registry lookups, %d leechers; want 10 and 10", reg.calls, resp.Incomplete)
	}
	reg.set(swarmtest.Hash(1), false)
	err := tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 1, bittorrent.EventNone), &resp)
	if _, ok := err.(*bittorrent.Refusal); !ok {
		t.Fatalf("announce after revocation = %v, want a refusal", err)
	}
	err = tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(2), swarmtest.Addr4(1), 1, bittorrent.EventStarted), &resp)
	if _, ok := err.(*bittorrent.Refusal); !ok {
		t.Fatalf("announce of an unregistered torrent = %v, want a refusal", err)
	}
	if st := tr.Store().Stats(); st.Torrents != 1 {
		t.Fatalf("store holds %d torrents, want only the registered one", st.Torrents)
	}
}

// TestStoreFailure: a store's failure reaches the frontend as an error
// that is neither a refusal nor a client error (so the client is told
// "internal error"), and keeps its cause for the log.
func TestStoreFailure(t *testing.T) {
	reg := &mapRegistry{state: map[bittorrent.InfoHash]bool{swarmtest.Hash(1): true}}
	store := &netStore{Store: memswarm.New(swarmtest.Config())}
	tr := newAllowlistTracker(store, reg)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	for i := range 2 {
		if err := tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(i), 1, bittorrent.EventStarted), &resp); err != nil {
			t.Fatal(err)
		}
	}
	store.down = true
	wantStoreErr := func(op string, err error) {
		t.Helper()
		_, refused := err.(*bittorrent.Refusal)
		var ce bittorrent.ClientError
		if !errors.Is(err, errDown) || refused || errors.As(err, &ce) {
			t.Errorf("%s with the store down = %v, want an internal error wrapping %v", op, err, errDown)
		}
	}
	wantStoreErr("Announce", tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 1, bittorrent.EventNone), &resp))
	got, err := tr.Scrape(ctx, netip.Addr{}, []bittorrent.InfoHash{swarmtest.Hash(1), swarmtest.Hash(2)}, nil)
	wantStoreErr("Scrape", err)
	if len(got) != 0 {
		t.Errorf("a failed Scrape returned %+v, want nothing", got)
	}
	wantStoreErr("ScrapeAll", tr.ScrapeAll(ctx, func(bittorrent.Scrape) bool { return true }))
	// A scrape of untracked hashes only is refused without asking the store.
	if _, err := tr.Scrape(ctx, netip.Addr{}, []bittorrent.InfoHash{swarmtest.Hash(2)}, nil); err == nil || errors.Is(err, errDown) {
		t.Errorf("Scrape of an unregistered hash with the store down = %v, want the refusal", err)
	}
}

// TestScrapeKeepsOrder: tracked hashes get their counts and untracked
// ones zeros, in the order asked, however they are interleaved.
func TestScrapeKeepsOrder(t *testing.T) {
	h1, h2, x, y := swarmtest.Hash(1), swarmtest.Hash(2), swarmtest.Hash(8), swarmtest.Hash(9)
	reg := &mapRegistry{state: map[bittorrent.InfoHash]bool{h1: true, h2: true, y: false}}
	tr := newAllowlistTracker(memswarm.New(swarmtest.Config()), reg)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	tr.Announce(ctx, swarmtest.Req(h1, swarmtest.Addr4(1), 0, bittorrent.EventStarted), &resp)
	tr.Announce(ctx, swarmtest.Req(h2, swarmtest.Addr4(1), 5, bittorrent.EventStarted), &resp)
	counts := map[bittorrent.InfoHash]bittorrent.Scrape{
		h1: {InfoHash: h1, Complete: 1}, h2: {InfoHash: h2, Incomplete: 1},
		x: {InfoHash: x}, y: {InfoHash: y},
	}
	for _, hashes := range [][]bittorrent.InfoHash{
		{h1, h2},
		{x, h1},
		{h1, x},
		{x, h1, y, h2, h1},
		{h2, h2, x, x, h1},
		{x, y, x, h2},
	} {
		out := make([]bittorrent.Scrape, 1, 2) // too short: Scrape must grow it
		out, err := tr.Scrape(ctx, netip.Addr{}, hashes, out)
		if err != nil {
			t.Fatalf("Scrape(%v): %v", hashes, err)
		}
		if len(out) != len(hashes) {
			t.Fatalf("Scrape(%v) = %+v, want %d entries", hashes, out, len(hashes))
		}
		for i, ih := range hashes {
			if out[i] != counts[ih] {
				t.Fatalf("Scrape(%v)[%d] = %+v, want %+v", hashes, i, out[i], counts[ih])
			}
		}
	}
}

// TestTrackerAllocs: with a registry that does not allocate, an admitted
// announce, a refused one and a scrape of tracked and untracked hashes
// allocate nothing once the frontend's buffers have grown.
func TestTrackerAllocs(t *testing.T) {
	reg := &mapRegistry{state: map[bittorrent.InfoHash]bool{}}
	for i := range 10 {
		reg.set(swarmtest.Hash(i), true)
	}
	tr := newAllowlistTracker(memswarm.New(swarmtest.Config()), reg)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	for i := range 50 {
		tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(i%10), swarmtest.Addr4(i), uint64(i%2), bittorrent.EventStarted), &resp)
	}
	accept := swarmtest.Req(swarmtest.Hash(3), swarmtest.Addr4(3), 1, bittorrent.EventNone)
	refuse := swarmtest.Req(swarmtest.Hash(99), swarmtest.Addr4(3), 1, bittorrent.EventNone)
	hashes := []bittorrent.InfoHash{swarmtest.Hash(99), swarmtest.Hash(1), swarmtest.Hash(98), swarmtest.Hash(2)}
	out := make([]bittorrent.Scrape, 0, len(hashes))
	// An open tracker at its bounds: one torrent from 10.0.0.0/24 fills
	// that network's share, a second from elsewhere fills the table.
	full := boundedTracker(t, ModeOpen, nil)
	full.Announce(ctx, swarmtest.Req(swarmtest.Hash(1), swarmtest.Addr4(1), 1, bittorrent.EventStarted), &resp)
	full.Announce(ctx, swarmtest.Req(swarmtest.Hash(2), swarmtest.Addr4(1<<16), 1, bittorrent.EventStarted), &resp)
	fullReq := swarmtest.Req(swarmtest.Hash(3), swarmtest.Addr4(2<<16), 1, bittorrent.EventStarted)
	shareReq := swarmtest.Req(swarmtest.Hash(3), swarmtest.Addr4(2), 1, bittorrent.EventStarted)
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"announce", func() error { return tr.Announce(ctx, accept, &resp) }},
		{"refused announce", func() error {
			if _, ok := tr.Announce(ctx, refuse, &resp).(*bittorrent.Refusal); !ok {
				return errors.New("not refused")
			}
			return nil
		}},
		{"scrape", func() (err error) { out, err = tr.Scrape(ctx, netip.Addr{}, hashes, out); return err }},
		{"table full", func() error {
			if err := full.Announce(ctx, fullReq, &resp); err != full.fullAnswer {
				return fmt.Errorf("got %v, want %v", err, full.fullAnswer)
			}
			return nil
		}},
		{"network's share used", func() error {
			if err := full.Announce(ctx, shareReq, &resp); err != full.prefixAnswer {
				return fmt.Errorf("got %v, want %v", err, full.prefixAnswer)
			}
			return nil
		}},
	} {
		if err := c.fn(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := testing.AllocsPerRun(100, func() { c.fn() }); n != 0 {
			t.Errorf("%s allocates %v times, want 0", c.name, n)
		}
	}
}
