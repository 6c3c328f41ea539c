// Package httptracker is warden's HTTP frontend: BEP 3 announces and
// scrapes over HTTP/1.1, with the compact peer lists of BEP 23 and BEP 7
// and the scrape convention of BEP 48. It owns the wire: parsing the query
// string by hand (no url.Values, so a request costs no allocations of its
// own), deciding the peer's address from the connection (and, only behind
// trusted proxies, from X-Forwarded-For or X-Real-IP), and writing bencoded
// replies. What a request may do is left to package tracker; where peers are
// kept, to the swarm store.
//
// Every reply the tracker makes to a well-routed request is HTTP 200 with a
// bencoded body, failures included ("d14:failure reason...e"), because
// BitTorrent clients show the failure reason only on a 200.
package httptracker

import (
	"fmt"
	"net"
	"net/netip"
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
	// X-Forwarded-For and X-Real-IP headers are believed. Empty means the
	// headers are ignored and the peer's address is always the
	// connection's source address, which is the only safe setting when
	// clients reach warden directly.
	TrustedProxies []string `toml:"trusted_proxies"`
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
	// MaxConnsPerSource caps open connections from one IP address, so one
	// source cannot hold the others' share with idle or slow connections.
	MaxConnsPerSource int `toml:"max_conns_per_source"`
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
	if c.MaxConns < 1 || c.MaxConns > 1<<20 {
		return confkey.Errorf("max_conns", "must be between 1 and 1048576, got %d", c.MaxConns)
	}
	if c.MaxConnsPerSource < 1 || c.MaxConnsPerSource > c.MaxConns {
		return confkey.Errorf("max_conns_per_source", "must be between 1 and max_conns (%d), got %d", c.MaxConns, c.MaxConnsPerSource)
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
