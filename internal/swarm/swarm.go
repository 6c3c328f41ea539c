// Package swarm defines what the tracker needs from a swarm store: a place
// that remembers, per torrent, which peers announced recently, whether each
// is a seeder, and how many downloads completed. Implementations live in
// sub-packages (memswarm) and must pass the contract suite in swarmtest.
package swarm

import (
	"time"

	"warden/internal/bittorrent"
)

// Store keeps swarms. Every method is safe for concurrent use.
type Store interface {
	// Announce records the request's peer, keyed by req.Addr (never by peer
	// ID), or removes it at once for EventStopped. It then fills resp's
	// Complete and Incomplete counts and appends to resp.Peers up to
	// numWant other peers of the requester's address family, chosen at
	// random, never including the requester. A seeder is given only
	// leechers. Announce does not block on I/O and, once resp.Peers has
	// grown, allocates only when a torrent or peer is first seen.
	//
	// Before it records anything for a torrent, the store asks admit,
	// unless it already admitted that torrent under the same ticket. The
	// caller moves the ticket on whenever an earlier answer may no longer
	// hold (the registry's generation), so a torrent in steady use costs
	// one admission check per registry change rather than one per
	// announce, and the check reads nothing the store has not already
	// loaded. If admit refuses, Announce records nothing, leaves resp as it
	// was and returns false. admit runs under the store's lock: it must be
	// quick and must not call the store. A nil admit admits everything.
	Announce(req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse, ticket uint32, admit func(bittorrent.InfoHash) bool) bool

	// Scrape returns the counts for one torrent; a torrent the store has
	// never seen has all counts zero.
	Scrape(ih bittorrent.InfoHash) bittorrent.Scrape

	// ScrapeAll calls fn for every torrent the store knows, in no
	// particular order, until fn returns false.
	ScrapeAll(fn func(bittorrent.Scrape) bool)

	// Stats returns totals over all swarms.
	Stats() Stats
}

// Stats are totals over all swarms of a store.
type Stats struct {
	Torrents int `json:"torrents"`
	Seeders  int `json:"seeders"`
	Leechers int `json:"leechers"`
}

// Config tunes how long peers are remembered.
type Config struct {
	// PeerTTL is how long a peer stays without announcing again. About twice
	// the announce interval, so one missed announce does not drop a peer.
	PeerTTL time.Duration `toml:"peer_ttl"`
	// SweepInterval is how often expired peers are collected.
	SweepInterval time.Duration `toml:"sweep_interval"`
	// ThrottleInterval: a known peer announcing again (event none) sooner
	// than this after its last announce is kept alive and told the counts,
	// but gets no peers, so hammering clients cost no peer selection. Real
	// clients re-announce no faster than every minute or two. 0 disables.
	ThrottleInterval time.Duration `toml:"throttle_interval"`
}

// DefaultConfig suits the tracker's default 30 minute announce interval.
func DefaultConfig() Config {
	return Config{PeerTTL: 62 * time.Minute, SweepInterval: time.Minute, ThrottleInterval: 30 * time.Second}
}

// MaxPeerTTL is the longest peer_ttl; sweep_interval is at most as long.
const MaxPeerTTL = 8 * time.Hour

// Validate rejects settings that cannot work.
func (c Config) Validate() error {
	// The store keeps last-seen times modulo 2^16 seconds (about 18 h) to
	// save memory, so a peer must be swept out well before that.
	if c.PeerTTL < time.Second || c.PeerTTL > MaxPeerTTL {
		return errField("peer_ttl", "must be between 1s and "+MaxPeerTTL.String())
	}
	if c.SweepInterval < time.Second || c.SweepInterval > c.PeerTTL {
		return errField("sweep_interval", "must be between 1s and peer_ttl")
	}
	if c.ThrottleInterval < 0 || c.ThrottleInterval > c.PeerTTL {
		return errField("throttle_interval", "must be between 0 and peer_ttl")
	}
	return nil
}

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return "swarm: " + e.field + ": " + e.msg }

func errField(field, msg string) error { return &fieldError{field, msg} }
