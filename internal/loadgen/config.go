package loadgen

import (
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"warden/internal/confkey"
)

// Protocol is the tracker protocol a run speaks.
type Protocol string

// The protocols Run speaks.
const (
	UDP  Protocol = "udp"  // BEP 15
	HTTP Protocol = "http" // BEP 3 and 23, plain HTTP/1.1 without TLS
)

// Scenario is the mix of requests a run sends.
type Scenario string

// The scenarios Run knows.
const (
	ScenarioAnnounce Scenario = "announce" // announces only
	ScenarioScrape   Scenario = "scrape"   // scrapes only
	ScenarioMixed    Scenario = "mixed"    // announces, with a fraction ScrapeFraction of scrapes
	// ScenarioFlood runs two classes at once: legit peers joining
	// registered torrents at LegitRate from LegitSources, and a flood of
	// announces for unknown torrents from FloodSources at FloodRate (see
	// Config).
	ScenarioFlood Scenario = "flood"
)

// FloodMode is what the flood of ScenarioFlood sends.
type FloodMode string

// The flood modes.
const (
	// FloodValid sends announces that pass every check but registration:
	// over UDP, each source first gets a connection ID with a real
	// connect, then announces random info hashes with it.
	FloodValid FloodMode = "valid"
	// FloodGarbage sends datagrams of random bytes (UDP only).
	FloodGarbage FloodMode = "garbage"
	// FloodBadCookie sends announces with forged connection IDs (UDP
	// only): no connect, a random ID in every datagram.
	FloodBadCookie FloodMode = "bad-cookie"
)

// FloodOff is the FloodRate that turns the flood off, leaving only the
// legit class: the baseline to compare a flood with.
const FloodOff = -1

// Limits that Validate enforces. They keep a run bounded in memory, time and
// packets even when a flag is mistyped.
const (
	MaxWorkers      = 1024
	MaxWindow       = 4096 // requests in flight per UDP worker
	MaxDuration     = 24 * time.Hour
	MaxWarmup       = time.Hour
	MaxTimeout      = time.Minute
	MaxScrapeHashes = 74 // what fits a 1500-byte datagram (BEP 15)
	MaxNumWant      = 1000
	MaxPeers        = 1 << 24 // torrents × peers per torrent
	MaxSources      = 4096    // addresses in LegitSources or FloodSources
	MaxLegitRate    = 100_000 // joins per second
	MaxFloodRate    = 1e8     // datagrams or requests per second
	MaxFloodWorkers = 64
	MaxFloodConns   = 16384 // HTTP flood connections, each a goroutine and about 10 KiB
	MaxPipeline     = 256   // requests in flight on a pipelined flood connection
	MaxRealtime     = 99    // SCHED_FIFO priorities are 1-99
)

// Config describes one load run. Start from DefaultConfig: its zero value is
// not valid.
type Config struct {
	// UDP is the BEP 15 tracker to load, as host:port. The host is a
	// literal IP or "localhost"; any other name needs AllowRemote and is
	// resolved once, when the run starts.
	UDP string
	// HTTP is the announce URL, e.g. http://127.0.0.1:6969/announce, with
	// the same rule for its host. Scrapes go to the BEP 48 scrape URL: the
	// last "announce" in the path replaced by "scrape". https is not
	// supported.
	HTTP string
	// Protocol chooses which of UDP and HTTP the run loads.
	Protocol Protocol
	// Scenario is the mix of requests.
	Scenario Scenario
	// ScrapeFraction is the share of scrapes in ScenarioMixed, 0 to 1.
	ScrapeFraction float64
	// ScrapeHashes is the number of info hashes in one scrape, 1 to 74.
	ScrapeHashes int

	// Torrents is the number of legit info hashes used. With HashesFile, 0
	// means every hash in the file and more than the file holds is an
	// error; without it, that many hashes are made by GenerateHashes.
	Torrents int
	// PeersPerTorrent is the number of simulated peers in each torrent.
	// Each peer has its own peer ID and port, and announces "started"
	// the first time and no event after that; one peer in four is a
	// seeder.
	PeersPerTorrent int
	// HashesFile, if set, holds the legit info hashes: 40 (or 64) hex
	// digits per line; blank lines and lines starting with # are skipped.
	HashesFile string
	// UnknownFraction is the share of requests (of info hashes, in a
	// scrape) that use a fresh random info hash instead of a legit one, 0
	// to 1.
	UnknownFraction float64
	// NumWant is the numwant sent in announces, 0 to 1000; -1 sends the
	// protocol's "default" (-1 over UDP, no numwant parameter over HTTP).
	NumWant int

	// Workers is the number of concurrent clients. Each owns one socket
	// (UDP) or one keep-alive connection at a time (HTTP), bound to its
	// own source address from Sources.
	Workers int
	// Window is how many requests each UDP worker keeps in flight. HTTP
	// workers have one request in flight each.
	Window int
	// Rate is the target number of requests per second over all workers,
	// 0 for as many as the workers can send. It is an upper bound: when
	// the target answers slowly, windows fill up and fewer are sent.
	Rate float64
	// Warmup is sent before measuring starts; its requests and replies
	// are not counted.
	Warmup time.Duration
	// Duration is how long the measured part sends requests, after Warmup.
	// In-flight requests then get up to Timeout to be answered.
	Duration time.Duration
	// MaxRequests caps the announce and scrape requests sent, warm-up
	// included; the run stops sending once it is reached.
	MaxRequests int64
	// Timeout is how long a request may wait for its reply before it
	// counts as timed out.
	Timeout time.Duration
	// NoGSO stops UDP workers from sending a batch of equal-length
	// requests as one GSO super-packet (Linux). The target receives the
	// same datagrams either way; GSO only makes sending cheaper.
	NoGSO bool

	// Sources is the range of local addresses to send from. Worker i binds
	// to the (i+1)-th address of the range, wrapping around if the range
	// is smaller than Workers, so the target sees up to Workers distinct
	// sources. On Linux any address of 127.0.0.0/8 can be bound without
	// configuration; ::1 is the only IPv6 loopback address. The zero
	// Prefix lets the kernel choose.
	Sources netip.Prefix
	// AllowRemote permits targets and sources outside loopback. Without
	// it, Validate refuses them, so a typo cannot load someone else's
	// server.
	AllowRemote bool

	// ServerPID, if not 0, is the process ID of the tracker under test, on
	// this machine: the run samples its memory (VmRSS, VmHWM) and CPU time
	// from /proc while it runs and reports them (Linux only).
	ServerPID int

	// The fields below are used by ScenarioFlood only; Workers, Window,
	// Rate, Sources, PeersPerTorrent, UnknownFraction and the scrape
	// fields are not.
	//
	// The legit class: new peers joining the registered torrents (the
	// hashes of HashesFile, or generated ones). Each join is a new peer
	// (its own peer ID and port) that announces once, with event
	// "started". Joins are paced evenly at LegitRate per second (0 for no
	// legit class, to run the flood from a process of its own) and go to
	// the addresses of LegitSources in turn. Over UDP each source has its
	// own socket and connection ID, got with a connect before its first
	// announce and reused while valid; over HTTP each source keeps one
	// connection alive, or with LegitNewConn opens one per join.
	LegitSources netip.Prefix
	LegitRate    float64
	// The flood: announces for random unknown info hashes from the
	// addresses of FloodSources, FloodRate per second over all sources, 0
	// for as many as the generator can send, FloodOff (-1) for none. Over
	// UDP the flood does not wait for replies: it sends in batches
	// (sendmmsg, GSO) and counts the replies that come back, by kind. Over
	// HTTP it is FloodConns connections of the modes of FloodMix (below).
	FloodSources netip.Prefix
	FloodRate    float64
	FloodMode    FloodMode
	// FloodWorkers is the number of goroutines sending the UDP flood,
	// each with a share of FloodSources' sockets; one core's worth each.
	FloodWorkers int

	// The HTTP flood (see floodhttp.go): FloodConns connections (0 for one
	// per flood source), spread over the flood sources and split between
	// the modes of FloodMix by weight. A pipelined connection keeps up to
	// FloodPipeline requests in flight once the server has shown that it
	// keeps connections alive. Idle and partial connections are held until
	// the server closes them or FloodHold passes (0: until sending stops),
	// then opened again.
	FloodMix      FloodMix
	FloodConns    int
	FloodPipeline int
	FloodHold     time.Duration

	// LegitNewConn makes every HTTP join open a connection of its own,
	// with "Connection: close", as most clients do, rather than reuse its
	// source's kept-alive one. The join's latency is then its connect,
	// request and reply, and joins of one source do not wait for each
	// other.
	LegitNewConn bool
	// LegitRealtime, if not 0, runs the legit class in a child process
	// (ChildCommand) at this SCHED_FIFO priority, 1-99 (Linux, needs
	// CAP_SYS_NICE), while this process runs the flood: a flood generator
	// sharing a core with the legit class would otherwise delay it, and
	// its delays would be counted as the tracker's latency.
	LegitRealtime int
	// ChildCommand starts a process that runs ServeLegitChild on its
	// standard input and output: for warden, its own executable with
	// "load --legit-child". Needed by LegitRealtime.
	ChildCommand []string `json:"-"`
}

// DefaultConfig returns a short UDP announce run with 16 workers.
func DefaultConfig() Config {
	return Config{
		Protocol:        UDP,
		Scenario:        ScenarioAnnounce,
		ScrapeFraction:  0.2,
		ScrapeHashes:    1,
		Torrents:        1000,
		PeersPerTorrent: 50,
		NumWant:         50,
		Workers:         16,
		Window:          8,
		Warmup:          time.Second,
		Duration:        10 * time.Second,
		MaxRequests:     100_000_000,
		Timeout:         time.Second,
		LegitSources:    netip.MustParsePrefix("127.2.0.0/22"),
		LegitRate:       1000,
		FloodSources:    netip.MustParsePrefix("127.1.0.0/22"),
		FloodMode:       FloodValid,
		FloodWorkers:    1,
		FloodMix:        FloodMix{Pipeline: 1},
		FloodPipeline:   16,
	}
}

// Validate returns a *confkey.Error naming the first field that cannot
// work by the flag of warden load that sets it ("--rate"), or nil. It never changes c and does no I/O: host names other than
// "localhost" are only resolved by Run.
func (c *Config) Validate() error {
	switch c.Protocol {
	case UDP:
		if _, err := parseUDPTarget(c.UDP, c.AllowRemote); err != nil {
			return err
		}
	case HTTP:
		if _, err := parseHTTPTarget(c.HTTP, c.AllowRemote); err != nil {
			return err
		}
	default:
		return confkey.Errorf("--protocol", "must be udp or http, got %q", c.Protocol)
	}
	switch c.Scenario {
	case ScenarioAnnounce, ScenarioScrape, ScenarioMixed:
	case ScenarioFlood:
		if err := c.validateFlood(); err != nil {
			return err
		}
	default:
		return confkey.Errorf("--scenario", "must be announce, scrape, mixed or flood, got %q", c.Scenario)
	}
	if c.ServerPID < 0 {
		return confkey.Errorf("--server-pid", "must be a process ID, or 0 for none, got %d", c.ServerPID)
	}
	if c.Protocol == HTTP && (c.Scenario == ScenarioScrape || c.Scenario == ScenarioMixed) {
		t, _ := parseHTTPTarget(c.HTTP, c.AllowRemote)
		if t.scrapePrefix == "" {
			return confkey.Errorf("--http", "path %q has no \"announce\" to derive a scrape URL from (BEP 48)", t.path)
		}
	}
	if !fraction(c.ScrapeFraction) {
		return confkey.Errorf("--scrape-fraction", "must be 0-1, got %v", c.ScrapeFraction)
	}
	if c.ScrapeHashes < 1 || c.ScrapeHashes > MaxScrapeHashes {
		return confkey.Errorf("--scrape-hashes", "must be 1-%d, got %d", MaxScrapeHashes, c.ScrapeHashes)
	}
	if c.Torrents < 0 || (c.Torrents == 0 && c.HashesFile == "") {
		return confkey.Errorf("--torrents", "must be at least 1 (or 0 with a hashes file, for all of it), got %d", c.Torrents)
	}
	if c.PeersPerTorrent < 1 {
		return confkey.Errorf("--peers", "must be at least 1, got %d", c.PeersPerTorrent)
	}
	if int64(c.Torrents)*int64(c.PeersPerTorrent) > MaxPeers {
		return confkey.Errorf("--peers", "torrents × peers must be at most %d, got %d", MaxPeers, int64(c.Torrents)*int64(c.PeersPerTorrent))
	}
	if !fraction(c.UnknownFraction) {
		return confkey.Errorf("--unknown-fraction", "must be 0-1, got %v", c.UnknownFraction)
	}
	if c.NumWant < -1 || c.NumWant > MaxNumWant {
		return confkey.Errorf("--numwant", "must be -1 (default) to %d, got %d", MaxNumWant, c.NumWant)
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return confkey.Errorf("--workers", "must be 1-%d, got %d", MaxWorkers, c.Workers)
	}
	if c.Window < 1 || c.Window > MaxWindow {
		return confkey.Errorf("--window", "must be 1-%d, got %d", MaxWindow, c.Window)
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 {
		return confkey.Errorf("--rate", "must be 0 (unlimited) or a positive number, got %v", c.Rate)
	}
	if c.Warmup < 0 || c.Warmup > MaxWarmup {
		return confkey.Errorf("--warmup", "must be 0-%v, got %v", MaxWarmup, c.Warmup)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return confkey.Errorf("--duration", "must be more than 0 and at most %v, got %v", MaxDuration, c.Duration)
	}
	if c.MaxRequests < 1 {
		return confkey.Errorf("--max-requests", "must be at least 1, got %d", c.MaxRequests)
	}
	if c.Timeout <= 0 || c.Timeout > MaxTimeout {
		return confkey.Errorf("--timeout", "must be more than 0 and at most %v, got %v", MaxTimeout, c.Timeout)
	}
	if c.Sources.IsValid() {
		if err := c.checkSources(); err != nil {
			return err
		}
	}
	return nil
}

func fraction(f float64) bool { return f >= 0 && f <= 1 } // false for NaN

// validateFlood checks the fields of ScenarioFlood.
func (c *Config) validateFlood() error {
	if c.Sources.IsValid() {
		return confkey.Errorf("--sources", "not used by the flood scenario: give --legit-sources and --flood-sources")
	}
	if math.IsNaN(c.LegitRate) || c.LegitRate < 0 || c.LegitRate > MaxLegitRate {
		return confkey.Errorf("--legit-rate", "must be 0 (no legit class) to %d per second, got %v", MaxLegitRate, c.LegitRate)
	}
	if math.IsNaN(c.FloodRate) || c.FloodRate != FloodOff && (c.FloodRate < 0 || c.FloodRate > MaxFloodRate) {
		return confkey.Errorf("--flood-rate", "must be -1 (off), 0 (as fast as possible) or a rate up to %g per second, got %v", MaxFloodRate, c.FloodRate)
	}
	switch c.FloodMode {
	case FloodValid:
	case FloodGarbage, FloodBadCookie:
		if c.Protocol != UDP {
			return confkey.Errorf("--flood-mode", "%s is for UDP only", c.FloodMode)
		}
	default:
		return confkey.Errorf("--flood-mode", "must be valid, garbage or bad-cookie, got %q", c.FloodMode)
	}
	if c.FloodWorkers < 1 || c.FloodWorkers > MaxFloodWorkers {
		return confkey.Errorf("--flood-workers", "must be 1-%d, got %d", MaxFloodWorkers, c.FloodWorkers)
	}
	if err := c.FloodMix.check(); err != nil {
		return confkey.Errorf("--flood-mix", "%v", err)
	}
	if c.FloodMix != (FloodMix{Pipeline: 1}) && c.Protocol != HTTP {
		return confkey.Errorf("--flood-mix", "is for HTTP only")
	}
	if c.FloodConns < 0 || c.FloodConns > MaxFloodConns {
		return confkey.Errorf("--flood-conns", "must be 0 (one per flood source) to %d, got %d", MaxFloodConns, c.FloodConns)
	}
	if c.FloodPipeline < 1 || c.FloodPipeline > MaxPipeline {
		return confkey.Errorf("--flood-pipeline", "must be 1-%d, got %d", MaxPipeline, c.FloodPipeline)
	}
	if c.FloodHold < 0 || c.FloodHold > MaxDuration {
		return confkey.Errorf("--flood-hold", "must be 0 (until sending stops) to %v, got %v", MaxDuration, c.FloodHold)
	}
	if c.LegitNewConn && c.Protocol != HTTP {
		return confkey.Errorf("--legit-new-conn", "is for HTTP only")
	}
	if c.LegitRealtime < 0 || c.LegitRealtime > MaxRealtime {
		return confkey.Errorf("--legit-rt", "must be 0 (in this process) or a SCHED_FIFO priority 1-%d, got %d", MaxRealtime, c.LegitRealtime)
	}
	if c.LegitRealtime > 0 {
		if c.LegitRate == 0 {
			return confkey.Errorf("--legit-rt", "needs a legit class (--legit-rate above 0)")
		}
		if len(c.ChildCommand) == 0 {
			return confkey.Errorf("--legit-rt", "needs a command to start the legit process (Config.ChildCommand)")
		}
	}
	legit, flood := c.LegitRate > 0, c.FloodRate != FloodOff
	if !legit && !flood {
		return confkey.Errorf("--flood-rate", "is -1 (off) while --legit-rate is 0: nothing to send")
	}
	if legit {
		if err := c.checkPrefix("--legit-sources", c.LegitSources); err != nil {
			return err
		}
	}
	if !flood {
		return nil
	}
	if err := c.checkPrefix("--flood-sources", c.FloodSources); err != nil {
		return err
	}
	if legit && c.LegitSources.Overlaps(c.FloodSources) {
		return confkey.Errorf("--flood-sources", "%v overlaps --legit-sources %v: the tracker could not tell the classes apart", c.FloodSources, c.LegitSources)
	}
	return nil
}
func (c *Config) checkSources() error { return c.checkPrefix("--sources", c.Sources) }

// checkPrefix checks a range of source addresses: set, loopback unless
// AllowRemote, of the target's family, and for the flood scenario's
// ranges, at most MaxSources addresses.
func (c *Config) checkPrefix(field string, p netip.Prefix) error {
	if !p.IsValid() {
		return confkey.Errorf(field, "missing range of source addresses (CIDR)")
	}
	if p.Addr().Zone() != "" {
		return confkey.Errorf(field, "zones are not supported: %v", p)
	}
	if p.Addr().Is4In6() {
		return confkey.Errorf(field, "use the IPv4 form, not %v", p)
	}
	if !c.AllowRemote && !loopbackPrefix(p) {
		return confkey.Errorf(field, "%v is not loopback (127.0.0.0/8 or ::1); pass --allow-remote to send from other addresses", p)
	}
	if field != "--sources" {
		if n := prefixSize(p); n > MaxSources {
			return confkey.Errorf(field, "%v has %d addresses, more than %d", p, n, MaxSources)
		}
	}
	var target netip.Addr
	switch c.Protocol {
	case UDP:
		t, _ := parseUDPTarget(c.UDP, c.AllowRemote)
		target = t.Addr()
	case HTTP:
		t, _ := parseHTTPTarget(c.HTTP, c.AllowRemote)
		target = t.addr.Addr()
	}
	if target.IsValid() && target.Is4() != p.Addr().Is4() {
		return confkey.Errorf(field, "%v is not of the target's address family (%v)", p, target)
	}
	return nil
}

// prefixSize returns the number of addresses sourceAddrs uses from p
// (without the first and last of a range of four or more), capped at
// 1<<20.
func prefixSize(p netip.Prefix) int {
	hostBits := p.Addr().BitLen() - p.Bits()
	switch {
	case hostBits >= 20:
		return 1 << 20
	case hostBits >= 2:
		return 1<<hostBits - 2
	}
	return 1 << hostBits
}

// loopbackPrefix reports whether every address of p is a loopback address.
func loopbackPrefix(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() >= 8 && p.Addr().IsLoopback()
	}
	return p.Bits() == 128 && p.Addr().IsLoopback()
}

// parseHost parses the host part of a target. It returns the zero Addr for
// a name that Run must resolve, which only AllowRemote permits.
func parseHost(field, host string, allowRemote bool) (netip.Addr, error) {
	if host == "" {
		return netip.Addr{}, confkey.Errorf(field, "missing host")
	}
	if strings.EqualFold(host, "localhost") {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		if !allowRemote {
			return netip.Addr{}, confkey.Errorf(field, "host %q must be a loopback IP or localhost; pass --allow-remote for other hosts", host)
		}
		return netip.Addr{}, nil
	}
	if a.Zone() != "" {
		return netip.Addr{}, confkey.Errorf(field, "zones are not supported: %q", host)
	}
	a = a.Unmap()
	if !allowRemote && !a.IsLoopback() {
		return netip.Addr{}, confkey.Errorf(field, "%v is not a loopback address; pass --allow-remote to load another host", a)
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, confkey.Errorf(field, "%v cannot be a target", a)
	}
	return a, nil
}

func parsePort(field, s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, confkey.Errorf(field, "port must be 1-65535, got %q", s)
	}
	return uint16(n), nil
}

// udpTarget is a parsed Config.UDP: either an address, or a host name to
// resolve (only with AllowRemote).
type udpTarget struct {
	netip.AddrPort
	host string // set when the address must be resolved
	port uint16
}

func parseUDPTarget(s string, allowRemote bool) (udpTarget, error) {
	if s == "" {
		return udpTarget{}, confkey.Errorf("--udp", "missing target address (host:port)")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return udpTarget{}, confkey.Errorf("--udp", "%v", err)
	}
	port, err := parsePort("--udp", portStr)
	if err != nil {
		return udpTarget{}, err
	}
	a, err := parseHost("--udp", host, allowRemote)
	if err != nil {
		return udpTarget{}, err
	}
	if !a.IsValid() {
		return udpTarget{host: host, port: port}, nil
	}
	return udpTarget{AddrPort: netip.AddrPortFrom(a, port)}, nil
}

// httpTarget is a parsed Config.HTTP.
type httpTarget struct {
	addr           netip.AddrPort // zero when host must be resolved
	host           string         // the URL's host, as sent in the Host header
	name           string         // host name to resolve, if addr is zero
	port           uint16
	path           string // the URL's escaped path
	announcePrefix string // request target up to the query parameters: path?[own query&]
	scrapePrefix   string // the same for the scrape URL; "" when the path has no "announce"
}

func parseHTTPTarget(s string, allowRemote bool) (httpTarget, error) {
	if s == "" {
		return httpTarget{}, confkey.Errorf("--http", "missing announce URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return httpTarget{}, confkey.Errorf("--http", "%v", err)
	}
	if u.Scheme != "http" {
		return httpTarget{}, confkey.Errorf("--http", "scheme must be http, got %q", u.Scheme)
	}
	if u.User != nil || u.Fragment != "" {
		return httpTarget{}, confkey.Errorf("--http", "URL must not have user info or a fragment")
	}
	portStr := u.Port()
	if portStr == "" {
		portStr = "80"
	}
	port, err := parsePort("--http", portStr)
	if err != nil {
		return httpTarget{}, err
	}
	a, err := parseHost("--http", u.Hostname(), allowRemote)
	if err != nil {
		return httpTarget{}, err
	}
	t := httpTarget{host: u.Host, port: port}
	if a.IsValid() {
		t.addr = netip.AddrPortFrom(a, port)
	} else {
		t.name = u.Hostname()
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	t.path = path
	query := "?"
	if u.RawQuery != "" {
		query = "?" + u.RawQuery + "&"
	}
	t.announcePrefix = path + query
	if i := strings.LastIndex(path, "announce"); i >= 0 {
		t.scrapePrefix = path[:i] + "scrape" + path[i+len("announce"):] + query
	}
	return t, nil
}
