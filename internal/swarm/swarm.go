// Package swarm defines what the tracker needs from a swarm store: a place
// that remembers, per torrent, which peers announced recently, whether each
// is a seeder, and how many downloads completed. Implementations live in
// sub-packages (memswarm) and must pass the contract suite in swarmtest.
// Which torrents may be tracked is the caller's decision; a store only
// remembers that decision (see Store.Announce), and keeps itself within
// the bounds of Config, refusing what is new rather than dropping what it
// holds.
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

// ErrFull is returned by Store.Announce, which then records nothing, for a
// torrent the store does not hold while it holds MaxTorrents. It is not
// for clients: the caller turns it into its own refusal.
var ErrFull = errors.New("swarm: torrent table full")

// ErrPrefixFull is returned by Store.Announce, which then records nothing,
// for a torrent the store does not hold, admitted as Unlisted, when the
// requester's network (IPv4 /24, IPv6 /48) already created
// MaxTorrentsPerPrefix of the torrents the store holds. It is not for
// clients.
var ErrPrefixFull = errors.New("swarm: source network created too many torrents")

// Admission is the caller's decision about a torrent, passed to
// Store.Announce.
type Admission uint8

const (
	// Undecided: the caller has not looked the torrent up. The store goes
	// ahead only for a torrent it holds as admitted under the same ticket.
	Undecided Admission = iota
	// Registered: the operator vouches for the torrent (the registry holds
	// it). Creating it counts against MaxTorrents only.
	Registered
	// Unlisted: anyone may create the torrent (open mode, or an
	// unregistered hash in denylist mode). Creating it also counts against
	// the requester's network, up to MaxTorrentsPerPrefix.
	Unlisted
)

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
	// A peer the store does not hold is not recorded, but answered all
	// the same, when its torrent holds MaxPeersPerTorrent peers or
	// MaxPeersPerAddress from the requester's address (an IPv6 /64): a
	// client behind a crowded address still gets peers, and an address
	// cannot fill a swarm with ports of its own.
	//
	// ticket names the caller's view of which torrents are allowed (the
	// registry's generation); the caller moves it on whenever an earlier
	// decision may no longer hold. With adm Undecided, Announce goes
	// ahead only for a torrent the store holds as admitted under this same
	// ticket; otherwise it records nothing, leaves resp as it was and
	// returns ErrNotAdmitted. The caller then decides, holding no store
	// lock, and if it allows the torrent calls again with Registered or
	// Unlisted, which records and remembers the ticket. So a torrent in
	// steady use costs one decision per ticket, not one per announce. A
	// store may remember no tickets and return ErrNotAdmitted whenever adm
	// is Undecided; its caller then decides on every announce.
	//
	// A torrent the store does not hold is created only within its
	// bounds: otherwise Announce records nothing, leaves resp as it was
	// and returns ErrFull or ErrPrefixFull. Torrents it holds are never
	// dropped to make room.
	Announce(ctx context.Context, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse, ticket uint32, adm Admission) error

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

// Stats are totals over all swarms of a store, and what its bounds turned
// away since it started.
type Stats struct {
	Torrents int `json:"torrents"`
	Seeders  int `json:"seeders"`
	Leechers int `json:"leechers"`
	// OffHeapBytes is the memory the store keeps outside the Go heap (for
	// memswarm, its peer arrays), which the runtime's own statistics miss.
	OffHeapBytes int64 `json:"off_heap_bytes"`

	// RefusedFull counts new torrents refused with ErrFull.
	RefusedFull uint64 `json:"refused_full"`
	// RefusedPrefix counts new torrents refused with ErrPrefixFull.
	RefusedPrefix uint64 `json:"refused_prefix"`
	// UnrecordedSwarmFull counts announces of new peers answered but not
	// recorded because their torrent held MaxPeersPerTorrent.
	UnrecordedSwarmFull uint64 `json:"unrecorded_swarm_full"`
	// UnrecordedAddressFull counts announces of new peers answered but not
	// recorded because their address held MaxPeersPerAddress in the torrent.
	UnrecordedAddressFull uint64 `json:"unrecorded_address_full"`
}

// Config tunes how long peers are remembered and bounds what a store
// holds. The bounds refuse what is new and never evict: the swarms real
// clients are in stay whatever arrives.
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

	// MaxTorrents is how many torrents the store holds at most, a hard
	// cap on its memory however many hashes arrive: past it, new torrents
	// are refused (ErrFull) until the sweep removes idle ones.
	MaxTorrents int `toml:"max_torrents"`
	// MaxTorrentsPerPrefix is how many of the torrents held one network
	// (an IPv4 /24, an IPv6 /48) may have created when anyone may create
	// them (Unlisted), so a few networks cannot fill the table.
	// Registered torrents do not count.
	MaxTorrentsPerPrefix int `toml:"max_torrents_per_prefix"`
	// MaxPeersPerTorrent is how many peers one torrent holds at most.
	MaxPeersPerTorrent int `toml:"max_peers_per_torrent"`
	// MaxPeersPerAddress is how many ports one address (an IPv6 /64) may
	// hold in one torrent, so that no address can crowd a swarm's replies.
	MaxPeersPerAddress int `toml:"max_peers_per_address"`
}

// DefaultConfig suits the tracker's default 30 minute announce interval.
func DefaultConfig() Config {
	return Config{
		PeerTTL:              62 * time.Minute,
		SweepInterval:        time.Minute,
		ThrottleInterval:     30 * time.Second,
		MaxTorrents:          1_000_000,
		MaxTorrentsPerPrefix: 10_000,
		MaxPeersPerTorrent:   100_000,
		MaxPeersPerAddress:   4,
	}
}

// MaxPeerTTL is the longest peer_ttl; sweep_interval is at most as long.
const MaxPeerTTL = 8 * time.Hour

// Upper bounds of the counts in Config: positions in a torrent's peer list
// are int32.
const (
	maxTorrentsLimit = 1 << 30
	maxPeersLimit    = 1 << 30
)

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
	switch {
	case c.MaxTorrents < 1 || c.MaxTorrents > maxTorrentsLimit:
		return confkey.Errorf("max_torrents", "must be between 1 and %d, got %d", maxTorrentsLimit, c.MaxTorrents)
	case c.MaxTorrentsPerPrefix < 1 || c.MaxTorrentsPerPrefix > maxTorrentsLimit:
		return confkey.Errorf("max_torrents_per_prefix", "must be between 1 and %d, got %d", maxTorrentsLimit, c.MaxTorrentsPerPrefix)
	case c.MaxPeersPerTorrent < 1 || c.MaxPeersPerTorrent > maxPeersLimit:
		return confkey.Errorf("max_peers_per_torrent", "must be between 1 and %d, got %d", maxPeersLimit, c.MaxPeersPerTorrent)
	case c.MaxPeersPerAddress < 1 || c.MaxPeersPerAddress > maxPeersLimit:
		return confkey.Errorf("max_peers_per_address", "must be between 1 and %d, got %d", maxPeersLimit, c.MaxPeersPerAddress)
	}
	return nil
}
