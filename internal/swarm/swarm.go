// Package swarm defines what the tracker needs from a swarm store: a place
// that remembers, per torrent, which peers announced recently, whether each
// is a seeder, and how many downloads completed. Implementations live in
// sub-packages (memswarm) and must pass the contract suite in swarmtest.
// Which torrents may be tracked is the caller's decision; a store only
// remembers that decision (see Store.Announce).
package swarm

import (
	"context"
	"errors"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/confkey"
)

// ErrNotAdmitted is returned by Store.Announce, which then records
// nothing, when the caller has yet to decide whether the torrent may be
// tracked under the ticket it passed. It is not for clients.
var ErrNotAdmitted = errors.New("swarm: torrent not admitted under this ticket")

// Store keeps swarms. Every method is safe for concurrent use and may be
// backed by a network service: calls that may do I/O take a context and
// return the store's own failures (never an error meant for a client).
type Store interface {
	// Announce records the request's peer, keyed by req.Addr (never by peer
	// ID), or removes it at once for EventStopped. It then fills resp's
	// Complete and Incomplete counts and appends to resp.Peers up to
	// numWant other peers of the requester's address family, chosen at
	// random, never including the requester. A seeder is given only
	// leechers. An in-memory store does not block and, once resp.Peers
	// has grown, allocates only when a torrent or peer is first seen.
	//
	// ticket names the caller's view of which torrents are allowed (the
	// registry's generation); the caller moves it on whenever an earlier
	// decision may no longer hold. With admitted false, Announce goes
	// ahead only for a torrent the store holds as admitted under this same
	// ticket; otherwise it records nothing, leaves resp as it was and
	// returns ErrNotAdmitted. The caller then decides, holding no store
	// lock, and if it allows the torrent calls again with admitted true,
	// which records and remembers the ticket. So a torrent in steady use
	// costs one decision per ticket, not one per announce. A store may
	// remember no tickets and return ErrNotAdmitted whenever admitted is
	// false; its caller then decides on every announce.
	Announce(ctx context.Context, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse, ticket uint32, admitted bool) error

	// Scrape fills in the counts of each entry of sc for the torrent its
	// InfoHash names, so a network store can fetch them in one round trip;
	// a torrent the store has never seen gets zero counts. On error the
	// counts are undefined.
	Scrape(ctx context.Context, sc []bittorrent.Scrape) error

	// ScrapeAll calls fn for every torrent the store knows, in no
	// particular order, until fn returns false or ctx is done (then it
	// returns ctx's error). fn is not called under a store lock.
	ScrapeAll(ctx context.Context, fn func(bittorrent.Scrape) bool) error

	// Stats returns totals over all swarms, for the operator. It does not
	// block on I/O: a store whose swarms live elsewhere returns the totals
	// it last read, refreshed in the background, because summing a
	// cluster's swarms is a scan, not something to do per status read.
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

// Validate returns a *confkey.Error naming the first setting that cannot
// work by its key in the [swarm] table.
func (c Config) Validate() error {
	// The store keeps last-seen times modulo 2^16 seconds (about 18 h) to
	// save memory, so a peer must be swept out well before that.
	if c.PeerTTL < time.Second || c.PeerTTL > MaxPeerTTL {
		return confkey.Errorf("peer_ttl", "must be between 1s and %v, got %v", MaxPeerTTL, c.PeerTTL)
	}
	if c.SweepInterval < time.Second || c.SweepInterval > c.PeerTTL {
		return confkey.Errorf("sweep_interval", "must be between 1s and peer_ttl (%v), got %v", c.PeerTTL, c.SweepInterval)
	}
	if c.ThrottleInterval < 0 || c.ThrottleInterval > c.PeerTTL {
		return confkey.Errorf("throttle_interval", "must be between 0 and peer_ttl (%v), got %v", c.PeerTTL, c.ThrottleInterval)
	}
	return nil
}
