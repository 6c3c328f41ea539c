package httptracker

import (
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
		}},
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
