package evidence

// Abuse episodes: the record of one source (an address, or a prefix when
// many of its addresses take part) from the moment it crossed a threshold
// until it has been quiet for a while. This file holds the contract other
// parts build on: the JSON body of a KindEpisode record (Episode), the
// settings of the [evidence] table that concern episodes, and what a
// frontend reports (Knock). The aggregator is in episode_agg.go, its
// fixed table of sources in episode_table.go.

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"warden/internal/asn"
	"warden/internal/bittorrent"
	"warden/internal/confkey"
)

// Episode is the body of a KindEpisode record and what GET /api/episodes
// serves. A record is written when an episode opens, at most every
// RecordInterval while it grows, and when it closes: the last record
// with a given ID is the episode's final state. Fields are only ever
// added to it; scripts and `warden evidence report` read these names.
type Episode struct {
	// ID is "E-<first_seen unix seconds>-<source>", stable for the
	// episode's life.
	ID string `json:"id"`
	// State is "open" or "closed".
	State string `json:"state"`
	// Source is an address ("198.51.100.7"; IPv6 as its /64) or, when
	// many addresses of one prefix took part, the prefix
	// ("198.51.100.0/24").
	Source string `json:"source"`
	// Prefix is the source's network: its IPv4 /24 or IPv6 /48.
	Prefix string `json:"prefix"`
	// Kind is what opened the episode: EpisodeRefusals, EpisodeRate,
	// EpisodeBan, EpisodeSYN, EpisodeGarbage or EpisodeConnect.
	Kind string `json:"kind"`
	// FirstSeen is the source's first request in the second it crossed
	// the threshold; LastSeen its latest request. RFC 3339, UTC.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Requests counts what the source sent, by kind.
	Requests Requests `json:"requests"`
	// Total is every request counted; Verified is true if most of them
	// came from a source that proved its address.
	Total    uint64 `json:"total"`
	Verified bool   `json:"verified"`
	// PeakPerSec is the highest count of one second; MeanPerSec is Total
	// over the episode's length (last_seen - first_seen + 1 s).
	PeakPerSec float64  `json:"peak_per_sec"`
	MeanPerSec float64  `json:"mean_per_sec"`
	Timeline   Timeline `json:"timeline"`
	// Hashes is a bounded sample of the info hashes asked for, heaviest
	// first; HashesSeen estimates how many distinct hashes were asked for
	// and HashesRegistered how many of those the registry holds.
	Hashes           []HashCount `json:"hashes"`
	HashesSeen       uint64      `json:"hashes_seen"`
	HashesRegistered uint64      `json:"hashes_registered"`
	// Clients are the clients claimed by peer ID, UserAgents the HTTP
	// User-Agent headers, Ports the ports announced; bounded samples,
	// heaviest first. Claims only: a source can send anything.
	Clients    []ClientCount `json:"clients"`
	UserAgents []ValueCount  `json:"user_agents"`
	Ports      []PortCount   `json:"ports"`
	// Actions counts what warden did.
	Actions Actions `json:"actions"`
	// Attribution of the source (package asn). AbuseEmail comes only from
	// the operator's networks file; AttributionSource says which source
	// answered: "networks file", "mmdb" or "libloc" ("" if none did).
	ASN               uint32 `json:"asn"`
	Org               string `json:"org"`
	Country           string `json:"country"`
	Network           string `json:"network"`
	AbuseEmail        string `json:"abuse_email"`
	AttributionSource string `json:"attribution_source"`

	// Added to the contract: why this record was written (EventOpened,
	// EventEscalated, EventUpdated, EventClosed), when the threshold was
	// crossed, and what crossed it.
	Event  string    `json:"event"`
	Opened time.Time `json:"opened"`
	Reason string    `json:"reason"`
}

// KindEpisodeTick is the kind of an EpisodeTick record.
const KindEpisodeTick Kind = "episode.tick"

// EpisodeTick is the body of a KindEpisodeTick record: the recent
// timeline of an open episode, written at most every TickInterval while
// it receives requests, between its full records (which come at most
// every RecordInterval). If warden is killed, the episode's last record
// and its ticks give its timeline and total to within a second: counts
// only grow, so a bucket's count is the largest that any record or tick
// of the episode gives it (buckets of the same width), and so are its
// total and last seen. A tick's first bucket is
// the one the previous record or tick ended in (then still counting);
// its last is the current one, still counting.
type EpisodeTick struct {
	ID            string    `json:"id"`
	Start         time.Time `json:"start"` // of the first bucket
	BucketSeconds int64     `json:"bucket_seconds"`
	Counts        []uint64  `json:"counts"`
	Total         uint64    `json:"total"`
	LastSeen      time.Time `json:"last_seen"`
}

// Episode states.
const (
	EpisodeOpen   = "open"
	EpisodeClosed = "closed"
)

// Episode kinds: what crossed the threshold.
const (
	EpisodeRefusals = "refusals" // refusals for unregistered or revoked hashes
	EpisodeRate     = "rate"     // requests over the rate threshold
	EpisodeBan      = "ban"      // the guard banned it
	EpisodeSYN      = "syn"      // TCP SYNs over their threshold
	EpisodeGarbage  = "garbage"  // mostly malformed datagrams or forged connection IDs
	EpisodeConnect  = "connect"  // mostly bare UDP connects
)

// Why a record of an episode was written.
const (
	EventOpened    = "opened"
	EventEscalated = "escalated" // its peak doubled, or warden took a new kind of action
	EventUpdated   = "updated"
	EventClosed    = "closed"
)

// Requests counts an episode's requests by kind.
type Requests struct {
	Connect       Count `json:"connect"` // UDP connects (spoofable); TCP connections refused at accept (verified)
	Announce      Count `json:"announce"`
	Scrape        Count `json:"scrape"`
	Garbage       Count `json:"garbage"` // malformed: datagrams (spoofable), or HTTP queries (verified)
	ForgedCookie  Count `json:"forged_cookie"`
	SYN           Count `json:"syn"`
	KernelDropped Count `json:"kernel_dropped"`
	HTTP          Count `json:"http"` // HTTP requests for another path or with another method
}

// Count splits a count by whether the source proved its address:
// verified by a valid UDP connection ID or a completed TCP handshake,
// spoofable for a bare connect, garbage, a SYN or a datagram the kernel
// dropped.
type Count struct {
	Verified  uint64 `json:"verified"`
	Spoofable uint64 `json:"spoofable"`
}

// Timeline is the episode's requests per bucket from Start. A bucket is
// one second until the episode outgrows its bounded count of buckets;
// then neighbours merge and BucketSeconds doubles.
type Timeline struct {
	Start         time.Time `json:"start"`
	BucketSeconds int64     `json:"bucket_seconds"`
	Counts        []uint64  `json:"counts"`
}

// HashCount is one info hash of the sample. Counts are estimates when
// the source sent faster than the sample takes (see Episodes).
type HashCount struct {
	InfoHash   bittorrent.InfoHash `json:"info_hash"`
	Count      uint64              `json:"count"`
	Registered bool                `json:"registered"`
}

// ClientCount is one peer ID prefix and the client it names.
type ClientCount struct {
	PeerID string `json:"peer_id"`
	Client string `json:"client"`
	Count  uint64 `json:"count"`
}

// ValueCount is one value of a sample, such as a User-Agent.
type ValueCount struct {
	Value string `json:"value"`
	Count uint64 `json:"count"`
}

// PortCount is one announced port of a sample.
type PortCount struct {
	Port  uint16 `json:"port"`
	Count uint64 `json:"count"`
}

// Actions counts what warden did with an episode's requests.
type Actions struct {
	Refused       uint64 `json:"refused"`        // answered with a refusal: torrent not tracked
	Limited       uint64 `json:"limited"`        // dropped or refused as over its rate, or over a connection cap
	Banned        uint64 `json:"banned"`         // dropped: banned
	KernelDropped uint64 `json:"kernel_dropped"` // dropped by the kernel: banned
	Blocked       uint64 `json:"blocked"`        // dropped: on the operator's blocklist
}

// EpisodeConfig is the part of the [evidence] table about episodes: the
// files attribution reads and the thresholds that open an episode. A
// threshold is crossed within one second, as counted from the start of
// each wall-clock second.
type EpisodeConfig struct {
	// NetworksFile is the operator's networks file (see asn.ParseNetworks):
	// tab-separated CIDR, ASN, organisation, country, abuse mailbox.
	NetworksFile string `toml:"networks_file"`
	// MMDBFile is a MaxMind DB in the GeoLite2-ASN layout.
	MMDBFile string `toml:"mmdb_file"`
	// LocationDB is a libloc database: "auto" finds Debian's
	// (libloc-database) when installed, "off" reads none.
	LocationDB string `toml:"location_db"`

	// RatePerSec opens an episode for a source sending more requests than
	// this in one second; 0 takes the guard's limit.rate_per_sec.
	RatePerSec int `toml:"rate_per_sec"`
	// PrefixRatePerSec does the same for a prefix (IPv4 /24, IPv6 /48)
	// from which at least PrefixSources addresses sent; 0 takes the
	// guard's limit.prefix_rate_per_sec.
	PrefixRatePerSec int `toml:"prefix_rate_per_sec"`
	// RefusalsPerSec opens an episode for a source refused this many
	// times in one second (unregistered or revoked torrents);
	// PrefixRefusalsPerSec for a prefix.
	RefusalsPerSec       int `toml:"refusals_per_sec"`
	PrefixRefusalsPerSec int `toml:"prefix_refusals_per_sec"`
	// SYNPerSec opens an episode for a source of this many TCP SYNs in
	// one second (the sensor counts them).
	SYNPerSec int `toml:"syn_per_sec"`
	// PrefixSources is how many distinct addresses of a prefix must take
	// part in one second for the prefix to open an episode of its own.
	PrefixSources int `toml:"prefix_sources"`
	// A ban always opens an episode.

	// QuietPeriod closes an episode once its source has sent nothing for
	// this long.
	QuietPeriod time.Duration `toml:"quiet_period"`
	// TableBytes is the memory of the table of sources counted, allocated
	// at start; it never grows. MaxOpen bounds the episodes open at once.
	TableBytes int `toml:"table_bytes"`
	MaxOpen    int `toml:"max_open"`
}

// LocationAuto as EpisodeConfig.LocationDB finds Debian's location database.
const LocationAuto = "auto"

// DefaultEpisodeConfig returns the settings warden serve uses when the
// config file says nothing.
func DefaultEpisodeConfig() EpisodeConfig {
	return EpisodeConfig{
		LocationDB:           LocationAuto,
		RefusalsPerSec:       10,
		PrefixRefusalsPerSec: 100,
		SYNPerSec:            100,
		PrefixSources:        8,
		QuietPeriod:          time.Minute,
		TableBytes:           4 << 20,
		MaxOpen:              256,
	}
}

// Limits of the settings.
const (
	maxTableBytes = 1 << 30
	maxOpenLimit  = 4096
	maxThreshold  = math.MaxUint16 // counts in a second are kept in 16 bits
)

// Validate returns a *confkey.Error naming the first setting that cannot
// work, by its key in the [evidence] table. Rate thresholds of 0 must be
// resolved (WithGuardRates) before an Episodes is built.
func (c EpisodeConfig) Validate() error {
	for _, t := range []struct {
		key string
		v   int
		min int
	}{
		{"rate_per_sec", c.RatePerSec, 0},
		{"prefix_rate_per_sec", c.PrefixRatePerSec, 0},
		{"refusals_per_sec", c.RefusalsPerSec, 1},
		{"prefix_refusals_per_sec", c.PrefixRefusalsPerSec, 1},
		{"syn_per_sec", c.SYNPerSec, 1},
	} {
		if t.v < t.min || t.v > maxThreshold {
			return confkey.Errorf(t.key, "must be %d-%d, got %d", t.min, maxThreshold, t.v)
		}
	}
	switch {
	case c.PrefixSources < 2 || c.PrefixSources > maxPrefixSources:
		return confkey.Errorf("prefix_sources", "must be 2-%d, got %d", maxPrefixSources, c.PrefixSources)
	case c.QuietPeriod < time.Second || c.QuietPeriod > 24*time.Hour:
		return confkey.Errorf("quiet_period", "must be between 1s and 24h, got %v", c.QuietPeriod)
	case c.TableBytes < setBytes || c.TableBytes > maxTableBytes:
		return confkey.Errorf("table_bytes", "must be %d-%d, got %d", setBytes, maxTableBytes, c.TableBytes)
	case c.MaxOpen < 1 || c.MaxOpen > maxOpenLimit:
		return confkey.Errorf("max_open", "must be 1-%d, got %d", maxOpenLimit, c.MaxOpen)
	case c.LocationDB == "":
		return confkey.Errorf("location_db", `must be "auto", "off" or a file`)
	}
	return nil
}

// WithGuardRates returns c with rate thresholds of 0 replaced by the
// guard's rates (requests per second per source and per prefix), rounded
// up: "over the guard's rate" is the default.
func (c EpisodeConfig) WithGuardRates(source, prefix float64) EpisodeConfig {
	if c.RatePerSec == 0 {
		c.RatePerSec = int(min(math.Ceil(source), maxThreshold))
	}
	if c.PrefixRatePerSec == 0 {
		c.PrefixRatePerSec = int(min(math.Ceil(prefix), maxThreshold))
	}
	c.RatePerSec, c.PrefixRatePerSec = max(c.RatePerSec, 1), max(c.PrefixRatePerSec, 1)
	return c
}

// ASNOptions returns the files for asn.Open.
func (c EpisodeConfig) ASNOptions() asn.Options {
	loc := c.LocationDB
	if loc == LocationAuto {
		loc = ""
	}
	return asn.Options{NetworksFile: c.NetworksFile, MMDBFile: c.MMDBFile, LocationDB: loc}
}

// ReqKind is what a source sent, as Requests counts it.
type ReqKind uint8

// The kinds of request, in the order of Requests.
const (
	ReqConnect ReqKind = iota
	ReqAnnounce
	ReqScrape
	ReqGarbage
	ReqForgedCookie
	ReqSYN
	ReqKernelDropped
	ReqHTTP
	numReqKinds
)

// Action is what warden did with a request.
type Action uint8

// The actions, besides answering.
const (
	ActServed  Action = iota // answered normally, or dropped for being malformed
	ActRefused               // answered with a refusal: the torrent is not tracked
	ActLimited               // over its rate or a connection cap
	ActBanned                // banned
	ActBlocked               // on the operator's blocklist
	numActions
)

// Knock is one request (or datagram, or refused connection) as a frontend
// saw it. Only Src, Kind, Verified and Action are required; the rest is
// recorded when the source has an episode open.
type Knock struct {
	Src      netip.Addr
	Kind     ReqKind
	Verified bool // a valid UDP connection ID, or a completed TCP handshake
	Action   Action
	// Hashes asked for (one for an announce), PeerID and Port announced,
	// UserAgent of an HTTP request: what the request claims, if parsed.
	Hashes    []bittorrent.InfoHash
	PeerID    bittorrent.PeerID
	HasPeerID bool
	Port      uint16
	UserAgent string
}

func (k ReqKind) String() string {
	if k < numReqKinds {
		return reqKindNames[k]
	}
	return fmt.Sprintf("ReqKind(%d)", uint8(k))
}

var reqKindNames = [numReqKinds]string{"connect", "announce", "scrape", "garbage", "forged_cookie", "syn", "kernel_dropped", "http"}
