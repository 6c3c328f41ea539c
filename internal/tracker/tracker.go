// Package tracker is warden's announce and scrape logic, independent of any
// wire protocol: it decides what a request may do, clamps what it asks for,
// and reads and updates the swarm store. Frontends (httptracker,
// udptracker) parse requests into bittorrent types and call it.
package tracker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
)

// Config holds the announce policy.
type Config struct {
	// Mode decides which torrents are tracked.
	Mode Mode `toml:"mode"`
	// AbuseContact is appended to every refusal, so whoever runs the
	// client knows whom to ask (an email address or a URL).
	AbuseContact string `toml:"abuse_contact"`
	// RefusalInterval is the interval and min interval sent with a refusal:
	// clients honour it as their retry floor, so it is long.
	RefusalInterval time.Duration `toml:"refusal_interval"`
	// AnnounceInterval is the interval sent to clients.
	AnnounceInterval time.Duration `toml:"announce_interval"`
	// MinAnnounceInterval is the "min interval" sent to clients.
	MinAnnounceInterval time.Duration `toml:"min_announce_interval"`
	// DefaultNumWant is used when a client does not say how many peers it wants.
	DefaultNumWant int `toml:"default_numwant"`
	// MaxNumWant caps what a client may ask for.
	MaxNumWant int `toml:"max_numwant"`
	// MaxScrapeHashes caps the info hashes in one scrape.
	MaxScrapeHashes int `toml:"max_scrape_hashes"`
}

// DefaultConfig returns the settings warden runs with when none are given.
func DefaultConfig() Config {
	return Config{
		Mode:                ModeAllowlist,
		RefusalInterval:     24 * time.Hour,
		AnnounceInterval:    30 * time.Minute,
		MinAnnounceInterval: 15 * time.Minute,
		DefaultNumWant:      50,
		MaxNumWant:          200,
		MaxScrapeHashes:     64,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case int(c.Mode) >= len(Modes):
		return fmt.Errorf("tracker: mode: %v is not one of allowlist, denylist, open", c.Mode)
	case len(c.AbuseContact) > 200:
		return fmt.Errorf("tracker: abuse_contact: at most 200 bytes, got %d", len(c.AbuseContact))
	case c.RefusalInterval < time.Minute:
		return fmt.Errorf("tracker: refusal_interval: must be at least 1m, got %v", c.RefusalInterval)
	case c.AnnounceInterval < time.Second:
		return fmt.Errorf("tracker: announce_interval: must be at least 1s, got %v", c.AnnounceInterval)
	case c.MinAnnounceInterval < 0 || c.MinAnnounceInterval > c.AnnounceInterval:
		return fmt.Errorf("tracker: min_announce_interval: must be between 0 and announce_interval, got %v", c.MinAnnounceInterval)
	case c.MaxNumWant < 0 || c.MaxNumWant > 1000:
		return fmt.Errorf("tracker: max_numwant: must be 0-1000, got %d", c.MaxNumWant)
	case c.DefaultNumWant < 0 || c.DefaultNumWant > c.MaxNumWant:
		return fmt.Errorf("tracker: default_numwant: must be between 0 and max_numwant, got %d", c.DefaultNumWant)
	case c.MaxScrapeHashes < 1 || c.MaxScrapeHashes > 1000:
		return fmt.Errorf("tracker: max_scrape_hashes: must be 1-1000, got %d", c.MaxScrapeHashes)
	}
	return nil
}

// Tracker answers announces and scrapes. It is safe for concurrent use.
type Tracker struct {
	cfg      Config
	reg      Registry
	store    swarm.Store
	log      *slog.Logger
	now      func() time.Time
	refusals *refusals
	admitFn  func(bittorrent.InfoHash) bool // t.admit, bound once; nil in open mode
}

// New returns a tracker over store. reg may be nil only in open mode.
func New(store swarm.Store, reg Registry, cfg Config, log *slog.Logger) *Tracker {
	if reg == nil && cfg.Mode != ModeOpen {
		panic("tracker: a registry is required in " + cfg.Mode.String() + " mode")
	}
	t := &Tracker{
		cfg:      cfg,
		reg:      reg,
		store:    store,
		log:      log.With("component", "tracker"),
		now:      time.Now,
		refusals: newRefusals(cfg.AbuseContact, cfg.RefusalInterval),
	}
	if cfg.Mode != ModeOpen {
		t.admitFn = t.admit
	}
	return t
}

// Config returns the policy the tracker runs with.
func (t *Tracker) Config() Config { return t.cfg }

// Store returns the swarm store, for statistics.
func (t *Tracker) Store() swarm.Store { return t.store }

// ErrInvalidPort is returned for an announce whose port is 0.
var ErrInvalidPort = bittorrent.ClientError("invalid port")

// Announce records the request and fills resp. resp.Peers is reused, so a
// frontend that keeps one response per worker makes announces allocation
// free. The error, if any, is a *bittorrent.Refusal for a torrent this
// tracker does not track, or a bittorrent.ClientError.
//
// Whether the mode allows the torrent is decided by the store's admission
// check (see swarm.Store), which asks the registry once per torrent and
// registry generation; only a refused announce goes through check for the
// refusal to send.
func (t *Tracker) Announce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	if req.Addr.Port() == 0 {
		if refusal := t.check(req.InfoHash, req.Addr.Addr()); refusal != nil {
			return refusal
		}
		return ErrInvalidPort
	}
	numWant := t.cfg.DefaultNumWant
	if req.NumWant >= 0 {
		numWant = min(int(req.NumWant), t.cfg.MaxNumWant)
	}
	if req.Event == bittorrent.EventStopped {
		numWant = 0
	}
	var ticket uint32
	if t.admitFn != nil {
		ticket = uint32(t.reg.Generation())
	}
	if !t.store.Announce(req, numWant, resp, ticket, t.admitFn) {
		if refusal := t.check(req.InfoHash, req.Addr.Addr()); refusal != nil {
			return refusal
		}
		// Allowed on the second look: the registry changed in between.
		t.store.Announce(req, numWant, resp, ticket, nil)
	}
	resp.Interval = t.cfg.AnnounceInterval
	resp.MinInterval = t.cfg.MinAnnounceInterval
	return nil
}

// ErrTooManyHashes is returned for a scrape of more than MaxScrapeHashes.
var ErrTooManyHashes = bittorrent.ClientError("too many info hashes in one scrape")

// Scrape appends one entry per requested hash, in request order, to
// out[:0]. A hash the tracker does not track gets zero counts, so a scrape
// reveals nothing about it; if no hash is tracked, the answer is the
// *bittorrent.Refusal for the first, so a client scraping a foreign torrent
// is told to stay away. src is the requester's address, for the operator's
// view of refusals.
func (t *Tracker) Scrape(ctx context.Context, src netip.Addr, hashes []bittorrent.InfoHash, out []bittorrent.Scrape) ([]bittorrent.Scrape, error) {
	if len(hashes) > t.cfg.MaxScrapeHashes {
		return out[:0], ErrTooManyHashes
	}
	out = out[:0]
	var first *bittorrent.Refusal
	tracked := 0
	for _, ih := range hashes {
		if refusal := t.check(ih, src); refusal != nil {
			if first == nil {
				first = refusal
			}
			out = append(out, bittorrent.Scrape{InfoHash: ih})
			continue
		}
		tracked++
		out = append(out, t.store.Scrape(ih))
	}
	if tracked == 0 && first != nil {
		return out[:0], first
	}
	return out, nil
}

// admit reports whether the mode allows the torrent: the store's admission
// check. It does not count or log anything; check does that for refusals.
func (t *Tracker) admit(ih bittorrent.InfoHash) bool {
	registered, revoked, _ := t.reg.Status(ih)
	if t.cfg.Mode == ModeDenylist {
		return !revoked
	}
	return registered && !revoked
}

// check returns the refusal for a torrent the mode does not allow, or nil.
// It does not allocate.
func (t *Tracker) check(ih bittorrent.InfoHash, src netip.Addr) *bittorrent.Refusal {
	if t.cfg.Mode == ModeOpen {
		return nil
	}
	registered, revoked, reason := t.reg.Status(ih)
	switch {
	case revoked:
		t.refusals.revoked.Add(1)
		t.refusals.observe(ih, src.Unmap(), t.now())
		return t.refusals.revokedAnswer(reason)
	case !registered && t.cfg.Mode == ModeAllowlist:
		t.refusals.unregistered.Add(1)
		t.refusals.observe(ih, src.Unmap(), t.now())
		return t.refusals.notRegistered
	}
	return nil
}

// Rejected reports refused requests: totals and the top n hashes and
// sources.
func (t *Tracker) Rejected(n int) Rejected { return t.refusals.report(n) }

// ScrapeAll calls fn for every torrent with peers or downloads, until fn
// returns false. Frontends offer it only when full scrape is enabled.
func (t *Tracker) ScrapeAll(ctx context.Context, fn func(bittorrent.Scrape) bool) {
	t.store.ScrapeAll(fn)
}
