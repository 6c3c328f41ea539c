package webseed

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"warden/internal/confkey"
)

// Config is the [web] section: the web listener's address, what it serves
// and its limits. Durations are TOML strings such as "30s".
type Config struct {
	// Listen is the TCP address of the web listener, host:port; "" turns
	// it off. Give it another address than the tracker's, so that a flood
	// on one does not take the other down.
	Listen string `toml:"listen"`
	// ContentDir is the directory served under /content/: the published
	// files, the web seed of every torrent publish makes.
	ContentDir string `toml:"content_dir"`
	// PublicURL is the listener's address as clients reach it
	// ("https://media.example"), written into torrents and feeds. ""
	// means http://LISTEN, with the host name when LISTEN is a wildcard.
	PublicURL string `toml:"public_url"`
	// ReadHeaderTimeout bounds the time to read a request's header.
	ReadHeaderTimeout time.Duration `toml:"read_header_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// StallTimeout is how long a reply may make no progress (a client
	// that stops reading) before its connection is closed. There is no
	// bound on a whole reply, which may be gigabytes at a capped rate.
	StallTimeout time.Duration `toml:"stall_timeout"`
	// MaxHeaderBytes bounds the request line plus header.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// ShutdownTimeout is how long replies under way may take to finish
	// once warden stops.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// MaxConns caps open connections; MaxConnsPerSource those of one
	// source (an IPv4 address, an IPv6 /64) and MaxConnsPerPrefix those
	// of one IPv4 /24 or IPv6 /48, with the lengths of [limit]. They are
	// shared as the HTTP tracker's are (http.max_conns).
	MaxConns          int `toml:"max_conns"`
	MaxConnsPerSource int `toml:"max_conns_per_source"`
	MaxConnsPerPrefix int `toml:"max_conns_per_prefix"`
	// KernelBans drops banned and blocklisted sources' connection
	// attempts in the kernel, as http.kernel_bans does.
	KernelBans bool `toml:"kernel_bans"`
	// MaxBytesPerSec caps what one source is sent per second, and
	// BurstBytes what it may be sent at once after a pause; 0 turns the
	// bandwidth caps off. PrefixMaxBytesPerSec and PrefixBurstBytes are
	// the same for a whole prefix.
	MaxBytesPerSec       int64 `toml:"max_bytes_per_sec"`
	BurstBytes           int64 `toml:"burst_bytes"`
	PrefixMaxBytesPerSec int64 `toml:"prefix_max_bytes_per_sec"`
	PrefixBurstBytes     int64 `toml:"prefix_burst_bytes"`
	// BandwidthTableBytes is the fixed memory of the bandwidth buckets,
	// allocated at start and never grown (see limit.Config.TableBytes).
	BandwidthTableBytes int `toml:"bandwidth_table_bytes"`
}

// DefaultConfig returns the listener off, and when it is turned on: 64
// MiB/s per source (burst 64 MiB) and 256 MiB/s per prefix, 4096
// connections, 16 per source and 256 per prefix.
func DefaultConfig() Config {
	return Config{
		ReadHeaderTimeout:    5 * time.Second,
		IdleTimeout:          60 * time.Second,
		StallTimeout:         30 * time.Second,
		MaxHeaderBytes:       8 << 10,
		ShutdownTimeout:      5 * time.Second,
		MaxConns:             4096,
		MaxConnsPerSource:    16,
		MaxConnsPerPrefix:    256,
		KernelBans:           true,
		MaxBytesPerSec:       64 << 20,
		BurstBytes:           64 << 20,
		PrefixMaxBytesPerSec: 256 << 20,
		PrefixBurstBytes:     256 << 20,
		BandwidthTableBytes:  4 << 20,
	}
}

// Bounds Validate enforces.
const (
	maxConnsLimit = 1 << 20
	// maxBytesPerSec is a token per nanosecond, the limiter's finest.
	maxBytesPerSec = unit * 1_000_000_000
)

// Validate returns a *confkey.Error naming the first setting that cannot
// work by its key in the [web] table. It never corrects a value. An empty
// Listen is valid: the listener is off.
func (c Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return confkey.Errorf("listen", "must be host:port, got %q", c.Listen)
	}
	if c.ContentDir == "" {
		return confkey.Errorf("content_dir", "must name the directory to serve when listen is set")
	}
	if st, err := os.Stat(c.ContentDir); err != nil || !st.IsDir() {
		return confkey.Errorf("content_dir", "%q is not a directory", c.ContentDir)
	}
	if c.PublicURL != "" {
		if _, err := ParsePublicURL(c.PublicURL); err != nil {
			return confkey.Errorf("public_url", "%v", err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout},
		{"idle_timeout", c.IdleTimeout},
		{"stall_timeout", c.StallTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
	} {
		if d.v < 100*time.Millisecond || d.v > 10*time.Minute {
			return confkey.Errorf(d.name, "must be between 100ms and 10m, got %v", d.v)
		}
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		return confkey.Errorf("max_header_bytes", "must be between 1024 and 1048576, got %d", c.MaxHeaderBytes)
	}
	if c.MaxConns < 1 || c.MaxConns > maxConnsLimit {
		return confkey.Errorf("max_conns", "must be between 1 and %d, got %d", maxConnsLimit, c.MaxConns)
	}
	if c.MaxConnsPerPrefix < 1 || c.MaxConnsPerPrefix > maxConnsLimit {
		return confkey.Errorf("max_conns_per_prefix", "must be between 1 and %d, got %d", maxConnsLimit, c.MaxConnsPerPrefix)
	}
	if c.MaxConnsPerSource < 1 || c.MaxConnsPerSource > c.MaxConnsPerPrefix {
		return confkey.Errorf("max_conns_per_source", "must be between 1 and max_conns_per_prefix (%d), got %d", c.MaxConnsPerPrefix, c.MaxConnsPerSource)
	}
	if c.MaxBytesPerSec == 0 {
		return nil // no bandwidth caps: the rest is unused
	}
	for _, r := range []struct {
		rate, burst          string
		rateV, burstV, least int64
	}{
		{"max_bytes_per_sec", "burst_bytes", c.MaxBytesPerSec, c.BurstBytes, 0},
		{"prefix_max_bytes_per_sec", "prefix_burst_bytes", c.PrefixMaxBytesPerSec, c.PrefixBurstBytes, c.MaxBytesPerSec},
	} {
		if r.rateV < unit || r.rateV > maxBytesPerSec || r.rateV < r.least {
			return confkey.Errorf(r.rate, "must be 0 (no caps) or from %d (and at least max_bytes_per_sec) to %d, got %d", unit, int64(maxBytesPerSec), r.rateV)
		}
		// The limiter's bucket must fill within 30 minutes.
		if r.burstV < unit || r.burstV/r.rateV > 1800 {
			return confkey.Errorf(r.burst, "must be from %d to 1800 s of %s, got %d", unit, r.rate, r.burstV)
		}
	}
	if err := bandwidthConfig(c, limitDefaults()).Validate(); err != nil {
		return confkey.Errorf("bandwidth_table_bytes", "%v", err)
	}
	return nil
}

// ParsePublicURL checks a base URL for torrents and feeds: http or https,
// a host, no query or fragment. The result has no trailing slash.
func ParsePublicURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q: want an http:// or https:// URL with a host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q: want no user, query or fragment", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// DefaultPublicURL is the base URL of a listener on addr (host:port) when
// public_url is not set: http://addr, with the machine's host name in
// place of a wildcard host.
func DefaultPublicURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "0" {
		return "", fmt.Errorf("%s: no port chosen yet", addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("host name for %s: %w", addr, err)
		}
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
