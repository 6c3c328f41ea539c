// Package httptracker is warden's HTTP frontend: BEP 3 announces and
// scrapes over HTTP/1.1, with the compact peer lists of BEP 23 and BEP 7
// and the scrape convention of BEP 48. It owns the wire: parsing the query
// string by hand (no url.Values, so a request costs no allocations of its
// own), deciding the peer's address from the connection (and, only behind
// trusted proxies, from the one header the operator named), sharing the
// connection slots fairly between sources and prefixes, and writing
// bencoded replies. What a request may do is left to package tracker;
// where peers are kept, to the swarm store.
//
// Every reply the tracker makes to a well-routed request is HTTP 200 with a
// bencoded body, failures included ("d14:failure reason...e"), because
// BitTorrent clients show the failure reason only on a 200.
package httptracker

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"warden/internal/confkey"
	"warden/internal/limit"
)

// Config configures the HTTP frontend. Durations are TOML strings such as
// "5s".
type Config struct {
	// Listen is the TCP address to serve on, host:port; ":6969" means
	// every address.
	Listen string `toml:"listen"`
	// TrustedProxies lists the reverse proxies, as CIDR prefixes
	// ("10.0.0.0/8") or single addresses ("192.0.2.7"), whose
	// ClientIPHeader is believed. Empty means no header is read and the
	// peer's address is always the connection's source address, which is
	// the only safe setting when clients reach warden directly.
	TrustedProxies []string `toml:"trusted_proxies"`
	// ClientIPHeader names the one header from which a request from a
	// trusted proxy gives the client's address: "X-Forwarded-For" (the
	// right-most address no trusted proxy wrote) or "X-Real-IP" (one
	// address). It is a choice, never a fallback: the other header is not
	// read, since a proxy that sets one passes the other through from the
	// client untouched. Required with TrustedProxies, refused without.
	ClientIPHeader string `toml:"client_ip_header"`
	// FullScrape allows a scrape with no info_hash, which lists every
	// torrent. Off by default: it is costly and tells anyone what the
	// tracker tracks.
	FullScrape bool `toml:"full_scrape"`
	// ReadHeaderTimeout bounds the time to read a request's header.
	ReadHeaderTimeout time.Duration `toml:"read_header_timeout"`
	// ReadTimeout bounds the time to read a whole request.
	ReadTimeout time.Duration `toml:"read_timeout"`
	// WriteTimeout bounds the time from the end of the request header to
	// the end of the reply.
	WriteTimeout time.Duration `toml:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line plus header (net/http allows
	// a few KiB of slack on top).
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// ShutdownTimeout is how long Run waits, once its context is done, for
	// requests in flight to finish before closing their connections.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// MaxConns caps open connections overall; past it new ones are closed
	// as soon as they are accepted. Keep it under the process's file limit.
	MaxConns int `toml:"max_conns"`
	// MaxConnsPerSource caps open connections from one source: an IPv4
	// address, or an IPv6 /64 (limit.ipv6_address_len), since whoever
	// has one address of a /64 has them all. At most MaxConnsPerPrefix.
	MaxConnsPerSource int `toml:"max_conns_per_source"`
	// MaxConnsPerPrefix caps open connections from one IPv4 /24 or IPv6
	// /48 (limit.ipv4_prefix_len, limit.ipv6_prefix_len) together.
	MaxConnsPerPrefix int `toml:"max_conns_per_prefix"`
	// MaxConnsPerProxy caps open connections from each trusted proxy
	// address, which speaks for many clients: its connections are exempt
	// from the per-source and per-prefix caps (and are never closed to
	// make room for others) but count toward MaxConns.
	MaxConnsPerProxy int `toml:"max_conns_per_proxy"`
	// KernelBans has the guard keep its bans and blocklist in a filter on
	// the listening socket (Linux: see package sockfilter), so the kernel
	// drops their connection attempts before it answers them.
	KernelBans bool `toml:"kernel_bans"`
}

// maxConnsLimit bounds every connection cap: far above any file limit.
const maxConnsLimit = 1 << 20

// The values ClientIPHeader accepts, in canonical form.
const (
	headerXFF     = "X-Forwarded-For"
	headerRealIP  = "X-Real-Ip"
	headerChoices = `"", "X-Forwarded-For" or "X-Real-IP"`
)

// clientIPHeader returns the canonical form of ClientIPHeader, or false if
// it is not one warden reads.
func (c Config) clientIPHeader() (string, bool) {
	switch {
	case c.ClientIPHeader == "":
		return "", true
	case strings.EqualFold(c.ClientIPHeader, headerXFF):
		return headerXFF, true
	case strings.EqualFold(c.ClientIPHeader, headerRealIP):
		return headerRealIP, true
	}
	return "", false
}

// DefaultConfig returns strict settings suitable for a tracker reached
// directly by clients: no trusted proxies, no full scrape, short timeouts
// and 8 KiB of header.
func DefaultConfig() Config {
	return Config{
		Listen:            ":6969",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ShutdownTimeout:   5 * time.Second,
		MaxConns:          16384,
		MaxConnsPerSource: 64,
		MaxConnsPerPrefix: 1024,
		MaxConnsPerProxy:  8192,
		KernelBans:        true,
	}
}

// Validate returns a *confkey.Error naming the first setting that cannot
// work by its key in the [http] table. It never corrects a value.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return confkey.Errorf("listen", "must be host:port, got %q", c.Listen)
	}
	if _, err := parseTrusted(c.TrustedProxies); err != nil {
		return err
	}
	header, ok := c.clientIPHeader()
	switch {
	case !ok:
		return confkey.Errorf("client_ip_header", "must be %s, got %q", headerChoices, c.ClientIPHeader)
	case header != "" && len(c.TrustedProxies) == 0:
		return confkey.Errorf("client_ip_header", "is %q but trusted_proxies is empty: no request would be read by it", c.ClientIPHeader)
	case header == "" && len(c.TrustedProxies) > 0:
		return confkey.Errorf("client_ip_header", "must name the header your proxies set (%s) when trusted_proxies is set", headerChoices)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout},
		{"idle_timeout", c.IdleTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
	} {
		// net/http reads 0 as "no limit", which a public server
		// must not have.
		if d.v < 100*time.Millisecond || d.v > 10*time.Minute {
			return confkey.Errorf(d.name, "must be between 100ms and 10m, got %v", d.v)
		}
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		return confkey.Errorf("read_header_timeout", "must not exceed read_timeout (%v), got %v", c.ReadTimeout, c.ReadHeaderTimeout)
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		return confkey.Errorf("max_header_bytes", "must be between 1024 and 1048576, got %d", c.MaxHeaderBytes)
	}
	if c.MaxConns < 1 || c.MaxConns > maxConnsLimit {
		return confkey.Errorf("max_conns", "must be between 1 and %d, got %d", maxConnsLimit, c.MaxConns)
	}
	// The narrower caps may exceed max_conns, which bounds them all.
	if c.MaxConnsPerPrefix < 1 || c.MaxConnsPerPrefix > maxConnsLimit {
		return confkey.Errorf("max_conns_per_prefix", "must be between 1 and %d, got %d", maxConnsLimit, c.MaxConnsPerPrefix)
	}
	if c.MaxConnsPerSource < 1 || c.MaxConnsPerSource > c.MaxConnsPerPrefix {
		return confkey.Errorf("max_conns_per_source", "must be between 1 and max_conns_per_prefix (%d), got %d", c.MaxConnsPerPrefix, c.MaxConnsPerSource)
	}
	if c.MaxConnsPerProxy < 1 || c.MaxConnsPerProxy > maxConnsLimit {
		return confkey.Errorf("max_conns_per_proxy", "must be between 1 and %d, got %d", maxConnsLimit, c.MaxConnsPerProxy)
	}
	return nil
}

// parseTrusted parses the trusted_proxies setting by the rules of
// limit.ParsePrefix: an IPv4-mapped prefix would never match, since
// source addresses are unmapped, and one with host bits set is ambiguous,
// so both are refused rather than guessed at.
func parseTrusted(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		p, err := limit.ParsePrefix(s)
		if err != nil {
			return nil, confkey.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Trusted ranges wider than these are warned about at start, unless they
// lie inside private or loopback space: any host in a trusted range can
// write the client address header, so a range of public addresses this
// wide is more likely a mistake (or a CDN's published list, which the
// warning lets the operator confirm) than a set of proxies one runs.
const (
	wideTrustedV4 = 16
	wideTrustedV6 = 32
)

// privateRanges are the address ranges a trusted range may span at any
// width without a warning: they cannot be reached from the internet.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("::1/128"),
}

// wideTrusted returns why p is too wide to trust without a second look,
// or "" if it is not.
func wideTrusted(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "every address is trusted: any client can choose the address it is tracked and banned as"
	}
	for _, q := range privateRanges {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return ""
		}
	}
	if p.Addr().Is4() && p.Bits() < wideTrustedV4 || p.Addr().Is6() && p.Bits() < wideTrustedV6 {
		return fmt.Sprintf("%s public addresses are trusted: any host among them can choose the address it is tracked and banned as", wideCount(p))
	}
	return ""
}

// wideCount says how many addresses p holds, as a power of two.
func wideCount(p netip.Prefix) string {
	return fmt.Sprintf("2^%d", p.Addr().BitLen()-p.Bits())
}
