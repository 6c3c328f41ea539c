// Package tracker is warden's announce and scrape logic, independent of any
// wire protocol: it decides what a request may do, clamps what it asks for,
// and reads and updates the swarm store. Frontends (httptracker,
// udptracker) parse requests into bittorrent types and call it.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/confkey"
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

// Validate returns a *confkey.Error naming the first bad field by its key
// in the [tracker] table.
func (c Config) Validate() error {
	switch {
	case int(c.Mode) >= len(Modes):
		return confkey.Errorf("mode", "%v is not one of allowlist, denylist, open", c.Mode)
	case len(c.AbuseContact) > 200:
		return confkey.Errorf("abuse_contact", "must be at most 200 bytes, got %d", len(c.AbuseContact))
	case contactProblem(c.AbuseContact) != "":
		return confkey.Errorf("abuse_contact", "%q %s", c.AbuseContact, contactProblem(c.AbuseContact))
	case c.RefusalInterval < time.Minute:
		return confkey.Errorf("refusal_interval", "must be at least 1m, got %v", c.RefusalInterval)
	case c.AnnounceInterval < time.Second:
		return confkey.Errorf("announce_interval", "must be at least 1s, got %v", c.AnnounceInterval)
	case c.MinAnnounceInterval < 0 || c.MinAnnounceInterval > c.AnnounceInterval:
		return confkey.Errorf("min_announce_interval", "must be between 0 and announce_interval, got %v", c.MinAnnounceInterval)
	case c.MaxNumWant < 0 || c.MaxNumWant > 1000:
		return confkey.Errorf("max_numwant", "must be 0-1000, got %d", c.MaxNumWant)
	case c.DefaultNumWant < 0 || c.DefaultNumWant > c.MaxNumWant:
		return confkey.Errorf("default_numwant", "must be between 0 and max_numwant, got %d", c.DefaultNumWant)
	case c.MaxScrapeHashes < 1 || c.MaxScrapeHashes > 1000:
		return confkey.Errorf("max_scrape_hashes", "must be 1-1000, got %d", c.MaxScrapeHashes)
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
	sink     RefusalSink // nil: refusals are not reported

	// The answers for a new torrent the store's bounds refuse, built once.
	// A full table is the tracker's condition and eases as idle swarms
	// expire, so the client is asked back after a normal interval; a
	// network that already created its share of torrents is told to stay
	// away for the refusal interval, like any other refused client.
	fullAnswer, prefixAnswer *bittorrent.Refusal
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
	t.fullAnswer = &bittorrent.Refusal{Reason: t.refusals.withContact("tracker full: no new torrents for now"), Interval: cfg.AnnounceInterval}
	t.prefixAnswer = &bittorrent.Refusal{Reason: t.refusals.withContact("too many torrents from your network"), Interval: cfg.RefusalInterval}
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
// tracker does not track or, new, does not take now (the store is at one
// of its bounds), a bittorrent.ClientError, or the store's failure, which
// is for the frontend to log and never to show the client.
//
// The store remembers the registry generation under which each torrent was
// last admitted (see swarm.Store), so a torrent in steady use costs no
// registry lookup. Otherwise the store records nothing and says so; the
// tracker then looks the torrent up, holding no store lock, and announces
// again as admitted, or sends the refusal.
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
	// The generation is read before the registry is, so a torrent is never
	// credited with a ticket newer than the answer that admitted it.
	var ticket uint32
	adm := swarm.Unlisted
	if t.cfg.Mode != ModeOpen {
		ticket = uint32(t.reg.Generation())
		adm = swarm.Undecided
	}
	err := t.store.Announce(ctx, req, numWant, resp, ticket, adm)
	if errors.Is(err, swarm.ErrNotAdmitted) {
		var refusal *bittorrent.Refusal
		if adm, refusal = t.decide(req.InfoHash, req.Addr.Addr()); refusal != nil {
			return refusal
		}
		err = t.store.Announce(ctx, req, numWant, resp, ticket, adm)
	}
	switch {
	case err == nil:
	case errors.Is(err, swarm.ErrFull):
		return t.fullAnswer
	case errors.Is(err, swarm.ErrPrefixFull):
		return t.prefixAnswer
	default:
		return fmt.Errorf("tracker: announce: %w", err)
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
// view of refusals. Any other error is the store's failure.
func (t *Tracker) Scrape(ctx context.Context, src netip.Addr, hashes []bittorrent.InfoHash, out []bittorrent.Scrape) ([]bittorrent.Scrape, error) {
	if len(hashes) > t.cfg.MaxScrapeHashes {
		return out[:0], ErrTooManyHashes
	}
	// The tracked hashes go first, in order, so the store is asked once
	// and never about a hash it must not reveal.
	out = out[:0]
	var first *bittorrent.Refusal
	for _, ih := range hashes {
		if refusal := t.check(ih, src); refusal != nil {
			if first == nil {
				first = refusal
			}
			continue
		}
		out = append(out, bittorrent.Scrape{InfoHash: ih})
	}
	tracked := len(out)
	if tracked == 0 && first != nil {
		return out, first
	}
	if err := t.store.Scrape(ctx, out); err != nil {
		return out[:0], fmt.Errorf("tracker: scrape: %w", err)
	}
	if tracked == len(hashes) {
		return out, nil
	}
	// Move each tracked entry to its place in request order, working from
	// the end so none is overwritten before it moves (its place is never
	// before it); the places left get zero counts.
	out = slices.Grow(out, len(hashes)-tracked)[:len(hashes)]
	j := tracked - 1
	for i := len(hashes) - 1; i >= 0; i-- {
		if j >= 0 && out[j].InfoHash == hashes[i] {
			out[i] = out[j]
			j--
		} else {
			out[i] = bittorrent.Scrape{InfoHash: hashes[i]}
		}
	}
	return out, nil
}

// check returns the refusal for a torrent the mode does not allow, or nil.
// It does not allocate.
func (t *Tracker) check(ih bittorrent.InfoHash, src netip.Addr) *bittorrent.Refusal {
	_, refusal := t.decide(ih, src)
	return refusal
}

// decide returns how the mode admits a torrent to the store: as
// registered, as anyone's (open mode, or unregistered in denylist mode),
// or not at all, with the refusal. It does not allocate.
func (t *Tracker) decide(ih bittorrent.InfoHash, src netip.Addr) (swarm.Admission, *bittorrent.Refusal) {
	if t.cfg.Mode == ModeOpen {
		return swarm.Unlisted, nil
	}
	registered, revoked, reason := t.reg.Status(ih)
	switch {
	case revoked:
		if t.sink != nil {
			t.sink.Refused(ih, src, RefusedRevoked, t.now())
		}
		return swarm.Undecided, t.refusals.revokedAnswer(reason)
	case registered:
		return swarm.Registered, nil
	case t.cfg.Mode == ModeAllowlist:
		if t.sink != nil {
			t.sink.Refused(ih, src, RefusedUnregistered, t.now())
		}
		return swarm.Undecided, t.refusals.notRegistered
	}
	return swarm.Unlisted, nil
}

// ReportRefusals makes the tracker tell sink of every refusal. Call it
// before serving; nil stops the reports.
func (t *Tracker) ReportRefusals(sink RefusalSink) { t.sink = sink }

// ScrapeAll calls fn for every torrent with peers or downloads, until fn
// returns false. Frontends offer it only when full scrape is enabled. An
// error is the store's failure or ctx's, possibly after some calls of fn,
// so the frontend must discard what fn collected.
func (t *Tracker) ScrapeAll(ctx context.Context, fn func(bittorrent.Scrape) bool) error {
	if err := t.store.ScrapeAll(ctx, fn); err != nil {
		return fmt.Errorf("tracker: full scrape: %w", err)
	}
	return nil
}
