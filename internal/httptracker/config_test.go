package httptracker

import (
	"net/netip"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "trusted CIDRs and addresses", change: func(c *Config) {
			c.TrustedProxies = []string{"10.0.0.0/8", "::1", "2001:db8::/32", "192.0.2.7/32"}
			c.ClientIPHeader = "X-Forwarded-For"
		}},
		{name: "X-Real-IP in any case", change: func(c *Config) {
			c.TrustedProxies, c.ClientIPHeader = []string{"10.0.0.0/8"}, "x-real-ip"
		}},
		{name: "header not one warden reads", change: func(c *Config) {
			c.TrustedProxies, c.ClientIPHeader = []string{"10.0.0.0/8"}, "Forwarded"
		}, wantErr: `client_ip_header: must be "", "X-Forwarded-For" or "X-Real-IP", got "Forwarded"`},
		{name: "header without trusted proxies", change: func(c *Config) { c.ClientIPHeader = "X-Real-IP" },
			wantErr: `client_ip_header: is "X-Real-IP" but trusted_proxies is empty: no request would be read by it`},
		{name: "trusted proxies without a header", change: func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8"} },
			wantErr: `client_ip_header: must name the header your proxies set ("", "X-Forwarded-For" or "X-Real-IP") when trusted_proxies is set`},
		{name: "per-prefix cap above max_conns", change: func(c *Config) { c.MaxConnsPerPrefix = c.MaxConns + 1 }},
		{name: "per-prefix cap huge", change: func(c *Config) { c.MaxConnsPerPrefix = 1<<20 + 1 },
			wantErr: "max_conns_per_prefix: must be between 1 and 1048576, got 1048577"},
		{name: "per-source cap above per-prefix", change: func(c *Config) { c.MaxConnsPerSource = 2000 },
			wantErr: "max_conns_per_source: must be between 1 and max_conns_per_prefix (1024), got 2000"},
		{name: "no proxy connections", change: func(c *Config) { c.MaxConnsPerProxy = 0 },
			wantErr: "max_conns_per_proxy: must be between 1 and 1048576, got 0"},
		{name: "proxy cap is max_conns", change: func(c *Config) { c.MaxConnsPerProxy = c.MaxConns }},
		{name: "listen host and port", change: func(c *Config) { c.Listen = "127.0.0.1:0" }},
		{name: "listen v6", change: func(c *Config) { c.Listen = "[::1]:6969" }},
		{name: "listen empty", change: func(c *Config) { c.Listen = "" },
			wantErr: `listen: must be host:port, got ""`},
		{name: "listen without port", change: func(c *Config) { c.Listen = "localhost" },
			wantErr: `listen: must be host:port, got "localhost"`},
		{name: "trusted garbage", change: func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} },
			wantErr: `trusted_proxies[1]: "proxy.local" is not an address or CIDR prefix`},
		{name: "trusted host bits", change: func(c *Config) { c.TrustedProxies = []string{"10.0.0.1/8"} },
			wantErr: `trusted_proxies[0]: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{name: "trusted v4-mapped", change: func(c *Config) { c.TrustedProxies = []string{"::ffff:10.0.0.0/104"} },
			wantErr: `trusted_proxies[0]: "::ffff:10.0.0.0/104" is IPv4-mapped, which no source is; write the IPv4 form 10.0.0.0/8`},
		{name: "trusted zone", change: func(c *Config) { c.TrustedProxies = []string{"fe80::1%eth0"} },
			wantErr: `trusted_proxies[0]: "fe80::1%eth0" has a zone, which names an interface, not a network`},
		{name: "no header timeout", change: func(c *Config) { c.ReadHeaderTimeout = 0 },
			wantErr: "read_header_timeout: must be between 100ms and 10m, got 0s"},
		{name: "negative read timeout", change: func(c *Config) { c.ReadTimeout = -time.Second },
			wantErr: "read_timeout: must be between 100ms and 10m, got -1s"},
		{name: "huge write timeout", change: func(c *Config) { c.WriteTimeout = time.Hour },
			wantErr: "write_timeout: must be between 100ms and 10m, got 1h0m0s"},
		{name: "no idle timeout", change: func(c *Config) { c.IdleTimeout = 0 },
			wantErr: "idle_timeout: must be between 100ms and 10m, got 0s"},
		{name: "no shutdown timeout", change: func(c *Config) { c.ShutdownTimeout = 0 },
			wantErr: "shutdown_timeout: must be between 100ms and 10m, got 0s"},
		{name: "header timeout above read timeout", change: func(c *Config) { c.ReadHeaderTimeout = time.Minute },
			wantErr: "read_header_timeout: must not exceed read_timeout (10s), got 1m0s"},
		{name: "header bytes zero", change: func(c *Config) { c.MaxHeaderBytes = 0 },
			wantErr: "max_header_bytes: must be between 1024 and 1048576, got 0"},
		{name: "header bytes huge", change: func(c *Config) { c.MaxHeaderBytes = 1 << 30 },
			wantErr: "max_header_bytes: must be between 1024 and 1048576, got 1073741824"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			before := c
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("Validate() = %q, want %q", got, tt.wantErr)
			}
			if c.Listen != before.Listen || c.ReadTimeout != before.ReadTimeout {
				t.Errorf("Validate changed the config")
			}
		})
	}
}

func TestWideTrusted(t *testing.T) {
	tests := []struct {
		prefix string
		warn   bool
	}{
		{"0.0.0.0/0", true},
		{"::/0", true},
		{"8.0.0.0/6", true},     // public, 2^26 addresses
		{"104.16.0.0/13", true}, // public: a CDN's range is worth a second look
		{"2400:cb00::/29", true},
		{"198.51.100.0/24", false},
		{"203.0.0.0/16", false},
		{"2001:db8::/32", false},
		{"10.0.0.0/8", false}, // private at any width
		{"172.16.0.0/12", false},
		{"fd00::/8", false},
		{"127.0.0.0/8", false},
		{"0.0.0.0/4", true}, // contains 10/8 but is wider
	}
	for _, tt := range tests {
		why := wideTrusted(netip.MustParsePrefix(tt.prefix))
		if (why != "") != tt.warn {
			t.Errorf("wideTrusted(%s) = %q, want a warning: %v", tt.prefix, why, tt.warn)
		}
	}
}
