package loadgen

import (
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"warden/internal/confkey"
)

func TestValidate(t *testing.T) {
	udp := func(f func(*Config)) Config {
		c := DefaultConfig()
		c.UDP = "127.0.0.1:6969"
		if f != nil {
			f(&c)
		}
		return c
	}
	http := func(url string, f func(*Config)) Config {
		c := DefaultConfig()
		c.Protocol, c.HTTP = HTTP, url
		if f != nil {
			f(&c)
		}
		return c
	}
	httpFlood := func(f func(*Config)) Config {
		return http("http://127.0.0.1:6969/announce", func(c *Config) {
			c.Scenario = ScenarioFlood
			if f != nil {
				f(c)
			}
		})
	}
	flood := func(f func(*Config)) Config {
		return udp(func(c *Config) {
			c.Scenario = ScenarioFlood
			if f != nil {
				f(c)
			}
		})
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{name: "default udp", cfg: udp(nil)},
		{name: "flood", cfg: flood(nil)},
		{name: "flood http", cfg: http("http://127.0.0.1:6969/announce", func(c *Config) { c.Scenario = ScenarioFlood })},
		{name: "flood single source at a rate", cfg: flood(func(c *Config) { c.FloodSources = netip.MustParsePrefix("127.1.0.1/32"); c.FloodRate = 8000 })},
		{name: "flood off", cfg: flood(func(c *Config) { c.FloodRate = FloodOff; c.FloodSources = netip.Prefix{} })},
		{name: "flood off overlapping", cfg: flood(func(c *Config) { c.FloodRate = FloodOff; c.FloodSources = c.LegitSources })},
		{name: "flood garbage", cfg: flood(func(c *Config) { c.FloodMode = FloodGarbage })},
		{name: "flood bad cookie", cfg: flood(func(c *Config) { c.FloodMode = FloodBadCookie })},
		{name: "flood ipv6", cfg: flood(func(c *Config) {
			c.UDP = "[::1]:6969"
			c.LegitSources = netip.MustParsePrefix("::1/128")
			c.FloodSources = netip.MustParsePrefix("2001:db8::/120")
			c.AllowRemote = true
		})},
		{name: "flood server pid", cfg: flood(func(c *Config) { c.ServerPID = 1 })},

		{name: "flood remote legit refused", cfg: flood(func(c *Config) { c.LegitSources = netip.MustParsePrefix("10.0.0.0/22") }), wantErr: "--legit-sources: 10.0.0.0/22 is not loopback"},
		{name: "flood remote flood refused", cfg: flood(func(c *Config) { c.FloodSources = netip.MustParsePrefix("192.0.2.0/24") }), wantErr: "--flood-sources: 192.0.2.0/24 is not loopback"},
		{name: "flood remote allowed", cfg: flood(func(c *Config) {
			c.FloodSources = netip.MustParsePrefix("192.0.2.0/24")
			c.AllowRemote = true
		})},
		{name: "flood no legit sources", cfg: flood(func(c *Config) { c.LegitSources = netip.Prefix{} }), wantErr: "--legit-sources: missing range"},
		{name: "flood no flood sources", cfg: flood(func(c *Config) { c.FloodSources = netip.Prefix{} }), wantErr: "--flood-sources: missing range"},
		{name: "flood overlap", cfg: flood(func(c *Config) { c.FloodSources = netip.MustParsePrefix("127.2.1.0/24") }), wantErr: "--flood-sources: 127.2.1.0/24 overlaps --legit-sources 127.2.0.0/22"},
		{name: "flood too many sources", cfg: flood(func(c *Config) { c.FloodSources = netip.MustParsePrefix("127.8.0.0/19") }), wantErr: "--flood-sources: 127.8.0.0/19 has 8190 addresses, more than 4096"},
		{name: "flood family", cfg: flood(func(c *Config) { c.LegitSources = netip.MustParsePrefix("::1/128") }), wantErr: "--legit-sources: ::1/128 is not of the target's address family"},
		{name: "flood sources", cfg: flood(func(c *Config) { c.Sources = netip.MustParsePrefix("127.1.0.0/16") }), wantErr: "--sources: not used by the flood scenario"},
		{name: "flood only", cfg: flood(func(c *Config) { c.LegitRate = 0; c.LegitSources = netip.Prefix{} })},
		{name: "flood only overlapping", cfg: flood(func(c *Config) { c.LegitRate = 0; c.FloodSources = c.LegitSources })},
		{name: "flood nothing", cfg: flood(func(c *Config) { c.LegitRate, c.FloodRate = 0, FloodOff }), wantErr: "--flood-rate: is -1 (off) while --legit-rate is 0: nothing to send"},
		{name: "flood legit rate negative", cfg: flood(func(c *Config) { c.LegitRate = -1 }), wantErr: "--legit-rate: must be 0 (no legit class) to 100000 per second, got -1"},
		{name: "flood legit rate too high", cfg: flood(func(c *Config) { c.LegitRate = 1e6 }), wantErr: "--legit-rate"},
		{name: "flood legit rate inf", cfg: flood(func(c *Config) { c.LegitRate = math.Inf(1) }), wantErr: "--legit-rate"},
		{name: "flood rate negative", cfg: flood(func(c *Config) { c.FloodRate = -2 }), wantErr: "--flood-rate: must be -1 (off), 0 (as fast as possible) or a rate up to 1e+08 per second, got -2"},
		{name: "flood rate inf", cfg: flood(func(c *Config) { c.FloodRate = math.Inf(1) }), wantErr: "--flood-rate"},
		{name: "flood mode", cfg: flood(func(c *Config) { c.FloodMode = "loud" }), wantErr: `--flood-mode: must be valid, garbage or bad-cookie, got "loud"`},
		{name: "flood http mix", cfg: httpFlood(func(c *Config) { c.FloodMix = FloodMix{Pipeline: 3, Churn: 1, Idle: 1, Partial: 1} })},
		{name: "flood http mix empty", cfg: httpFlood(func(c *Config) { c.FloodMix = FloodMix{} }), wantErr: "--flood-mix: no mode has a weight above 0"},
		{name: "flood http mix weight", cfg: httpFlood(func(c *Config) { c.FloodMix = FloodMix{Churn: 1001} }), wantErr: "--flood-mix: weight of churn must be 0-1000"},
		{name: "flood udp mix", cfg: flood(func(c *Config) { c.FloodMix = FloodMix{Churn: 1} }), wantErr: "--flood-mix: is for HTTP only"},
		{name: "flood conns", cfg: httpFlood(func(c *Config) { c.FloodConns = MaxFloodConns })},
		{name: "flood conns too many", cfg: httpFlood(func(c *Config) { c.FloodConns = MaxFloodConns + 1 }), wantErr: "--flood-conns: must be 0 (one per flood source) to 16384"},
		{name: "flood pipeline", cfg: httpFlood(func(c *Config) { c.FloodPipeline = 0 }), wantErr: "--flood-pipeline: must be 1-256, got 0"},
		{name: "flood hold", cfg: httpFlood(func(c *Config) { c.FloodHold = -time.Second }), wantErr: "--flood-hold"},
		{name: "legit new conn", cfg: httpFlood(func(c *Config) { c.LegitNewConn = true })},
		{name: "legit new conn udp", cfg: flood(func(c *Config) { c.LegitNewConn = true }), wantErr: "--legit-new-conn: is for HTTP only"},
		{name: "legit rt", cfg: httpFlood(func(c *Config) { c.LegitRealtime, c.ChildCommand = 10, []string{"warden"} })},
		{name: "legit rt priority", cfg: httpFlood(func(c *Config) { c.LegitRealtime, c.ChildCommand = 100, []string{"warden"} }), wantErr: "--legit-rt: must be 0 (in this process) or a SCHED_FIFO priority 1-99, got 100"},
		{name: "legit rt no child", cfg: httpFlood(func(c *Config) { c.LegitRealtime = 10 }), wantErr: "--legit-rt: needs a command"},
		{name: "legit rt no legit", cfg: httpFlood(func(c *Config) { c.LegitRealtime, c.LegitRate, c.ChildCommand = 10, 0, []string{"warden"} }), wantErr: "--legit-rt: needs a legit class"},
		{name: "flood garbage over http", cfg: http("http://127.0.0.1:6969/announce", func(c *Config) { c.Scenario, c.FloodMode = ScenarioFlood, FloodGarbage }), wantErr: "--flood-mode: garbage is for UDP only"},
		{name: "flood workers", cfg: flood(func(c *Config) { c.FloodWorkers = 0 }), wantErr: "--flood-workers: must be 1-64, got 0"},
		{name: "flood duration", cfg: flood(func(c *Config) { c.Duration = 0 }), wantErr: "--duration"},
		{name: "flood timeout", cfg: flood(func(c *Config) { c.Timeout = 2 * time.Minute }), wantErr: "--timeout"},
		{name: "server pid negative", cfg: udp(func(c *Config) { c.ServerPID = -1 }), wantErr: "--server-pid"},
		{name: "localhost", cfg: udp(func(c *Config) { c.UDP = "localhost:6969" })},
		{name: "any 127/8", cfg: udp(func(c *Config) { c.UDP = "127.9.8.7:1" })},
		{name: "ipv6 loopback", cfg: udp(func(c *Config) { c.UDP = "[::1]:6969"; c.Sources = netip.MustParsePrefix("::1/128") })},
		{name: "mapped loopback", cfg: udp(func(c *Config) { c.UDP = "[::ffff:127.0.0.1]:6969" })},
		{name: "http", cfg: http("http://127.0.0.1:6969/announce", nil)},
		{name: "http mixed", cfg: http("http://localhost:6969/announce?passkey=x", func(c *Config) { c.Scenario = ScenarioMixed })},
		{name: "sources", cfg: udp(func(c *Config) { c.Sources = netip.MustParsePrefix("127.1.0.0/16") })},
		{name: "hashes file, all of it", cfg: udp(func(c *Config) { c.Torrents = 0; c.HashesFile = "x" })},

		{name: "remote udp refused", cfg: udp(func(c *Config) { c.UDP = "192.0.2.1:6969" }), wantErr: "--udp: 192.0.2.1 is not a loopback address; pass --allow-remote to load another host"},
		{name: "remote ipv6 refused", cfg: udp(func(c *Config) { c.UDP = "[2001:db8::1]:6969" }), wantErr: "not a loopback address"},
		{name: "remote name refused", cfg: udp(func(c *Config) { c.UDP = "tracker.example.org:6969" }), wantErr: `--udp: host "tracker.example.org" must be a loopback IP or localhost`},
		{name: "remote http refused", cfg: http("http://192.0.2.1/announce", nil), wantErr: "--http: 192.0.2.1 is not a loopback address"},
		{name: "remote http name refused", cfg: http("http://tracker.example.org:80/announce", nil), wantErr: `host "tracker.example.org" must be a loopback IP`},
		{name: "remote sources refused", cfg: udp(func(c *Config) { c.Sources = netip.MustParsePrefix("10.0.0.0/24") }), wantErr: "--sources: 10.0.0.0/24 is not loopback"},
		{name: "wider than loopback refused", cfg: udp(func(c *Config) { c.Sources = netip.MustParsePrefix("127.0.0.0/7") }), wantErr: "is not loopback"},
		{name: "ipv6 range refused", cfg: udp(func(c *Config) { c.UDP = "[::1]:1"; c.Sources = netip.MustParsePrefix("::/127") }), wantErr: "is not loopback"},
		{name: "remote allowed", cfg: udp(func(c *Config) { c.UDP = "192.0.2.1:6969"; c.AllowRemote = true })},
		{name: "remote name allowed", cfg: udp(func(c *Config) { c.UDP = "tracker.example.org:6969"; c.AllowRemote = true })},
		{name: "remote sources allowed", cfg: udp(func(c *Config) {
			c.UDP = "192.0.2.1:6969"
			c.Sources = netip.MustParsePrefix("192.0.2.10/32")
			c.AllowRemote = true
		})},

		{name: "no target", cfg: udp(func(c *Config) { c.UDP = "" }), wantErr: "--udp: missing target address"},
		{name: "no port", cfg: udp(func(c *Config) { c.UDP = "127.0.0.1" }), wantErr: "--udp: address 127.0.0.1: missing port in address"},
		{name: "port zero", cfg: udp(func(c *Config) { c.UDP = "127.0.0.1:0" }), wantErr: `--udp: port must be 1-65535, got "0"`},
		{name: "unspecified", cfg: udp(func(c *Config) { c.UDP = "0.0.0.0:1"; c.AllowRemote = true }), wantErr: "cannot be a target"},
		{name: "https", cfg: http("https://127.0.0.1/announce", nil), wantErr: `--http: scheme must be http, got "https"`},
		{name: "http scrape without announce", cfg: http("http://127.0.0.1/a", func(c *Config) { c.Scenario = ScenarioScrape }), wantErr: "has no \"announce\""},
		{name: "protocol", cfg: udp(func(c *Config) { c.Protocol = "tcp" }), wantErr: `--protocol: must be udp or http, got "tcp"`},
		{name: "scenario", cfg: udp(func(c *Config) { c.Scenario = "storm" }), wantErr: "--scenario: must be announce, scrape, mixed or flood"},
		{name: "family mismatch", cfg: udp(func(c *Config) { c.Sources = netip.MustParsePrefix("::1/128") }), wantErr: "--sources: ::1/128 is not of the target's address family"},
		{name: "workers", cfg: udp(func(c *Config) { c.Workers = 0 }), wantErr: "--workers: must be 1-1024, got 0"},
		{name: "too many workers", cfg: udp(func(c *Config) { c.Workers = MaxWorkers + 1 }), wantErr: "--workers"},
		{name: "window", cfg: udp(func(c *Config) { c.Window = MaxWindow + 1 }), wantErr: "--window"},
		{name: "duration zero", cfg: udp(func(c *Config) { c.Duration = 0 }), wantErr: "--duration: must be more than 0"},
		{name: "duration unbounded", cfg: udp(func(c *Config) { c.Duration = 25 * time.Hour }), wantErr: "--duration"},
		{name: "warmup negative", cfg: udp(func(c *Config) { c.Warmup = -1 }), wantErr: "--warmup"},
		{name: "no request cap", cfg: udp(func(c *Config) { c.MaxRequests = 0 }), wantErr: "--max-requests: must be at least 1, got 0"},
		{name: "timeout", cfg: udp(func(c *Config) { c.Timeout = 0 }), wantErr: "--timeout"},
		{name: "rate negative", cfg: udp(func(c *Config) { c.Rate = -1 }), wantErr: "--rate"},
		{name: "unknown fraction", cfg: udp(func(c *Config) { c.UnknownFraction = 1.5 }), wantErr: "--unknown-fraction: must be 0-1, got 1.5"},
		{name: "numwant", cfg: udp(func(c *Config) { c.NumWant = -2 }), wantErr: "--numwant"},
		{name: "scrape hashes", cfg: udp(func(c *Config) { c.ScrapeHashes = 75 }), wantErr: "--scrape-hashes: must be 1-74, got 75"},
		{name: "torrents", cfg: udp(func(c *Config) { c.Torrents = 0 }), wantErr: "--torrents"},
		{name: "peers", cfg: udp(func(c *Config) { c.PeersPerTorrent = 0 }), wantErr: "--peers: must be at least 1"},
		{name: "population", cfg: udp(func(c *Config) { c.Torrents, c.PeersPerTorrent = 1<<20, 1<<10 }), wantErr: "--peers: torrents × peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.cfg
			err := tt.cfg.Validate()
			if !reflect.DeepEqual(tt.cfg, before) {
				t.Errorf("Validate changed the config")
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
			if err != nil {
				var ce *confkey.Error
				if !errors.As(err, &ce) {
					t.Errorf("Validate() = %T, want *confkey.Error", err)
				}
			}
		})
	}
}

// NaN is not equal to itself, so these are not in TestValidate's table,
// which checks that Validate leaves the config as it was.
func TestValidateNaN(t *testing.T) {
	for field, set := range map[string]func(*Config){
		"--rate":       func(c *Config) { c.Rate = math.NaN() },
		"--legit-rate": func(c *Config) { c.Scenario, c.LegitRate = ScenarioFlood, math.NaN() },
		"--flood-rate": func(c *Config) { c.Scenario, c.FloodRate = ScenarioFlood, math.NaN() },
	} {
		c := DefaultConfig()
		c.UDP = "127.0.0.1:6969"
		set(&c)
		var ce *confkey.Error
		if err := c.Validate(); !errors.As(err, &ce) || ce.Key != field {
			t.Errorf("Validate(%s = NaN) = %v, want an error for %s", field, err, field)
		}
	}
}

// Run must refuse a remote target before sending anything, even to resolve
// a name.
func TestRunRefusesRemote(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UDP = "192.0.2.1:6969"
	rep, err := Run(t.Context(), cfg)
	var ce *confkey.Error
	if !errors.As(err, &ce) || ce.Key != "--udp" {
		t.Fatalf("Run(remote) = %+v, %v; want a *confkey.Error for --udp", rep, err)
	}
}

func TestParseHTTPTarget(t *testing.T) {
	tests := []struct {
		url, announce, scrape, host string
	}{
		{"http://127.0.0.1:6969/announce", "/announce?", "/scrape?", "127.0.0.1:6969"},
		{"http://localhost/announce.php?pk=a%20b", "/announce.php?pk=a%20b&", "/scrape.php?pk=a%20b&", "localhost"},
		{"http://127.0.0.1:1/x/announce/y", "/x/announce/y?", "/x/scrape/y?", "127.0.0.1:1"},
		{"http://127.0.0.1:1/a", "/a?", "", "127.0.0.1:1"},
		{"http://127.0.0.1:1", "/?", "", "127.0.0.1:1"},
		{"http://[::1]:8080/announce", "/announce?", "/scrape?", "[::1]:8080"},
	}
	for _, tt := range tests {
		got, err := parseHTTPTarget(tt.url, false)
		if err != nil {
			t.Errorf("parseHTTPTarget(%q) error %v", tt.url, err)
			continue
		}
		if got.announcePrefix != tt.announce || got.scrapePrefix != tt.scrape || got.host != tt.host {
			t.Errorf("parseHTTPTarget(%q) = announce %q, scrape %q, host %q; want %q, %q, %q",
				tt.url, got.announcePrefix, got.scrapePrefix, got.host, tt.announce, tt.scrape, tt.host)
		}
	}
}

func TestSourceAddrs(t *testing.T) {
	tests := []struct {
		prefix       string
		n            int
		want         string
		wantDistinct int
	}{
		{"127.1.0.0/16", 3, "127.1.0.1 127.1.0.2 127.1.0.3", 3},
		{"127.1.0.7/30", 5, "127.1.0.5 127.1.0.6 127.1.0.5 127.1.0.6 127.1.0.5", 2}, // masked; no .4 or .7
		{"127.0.0.1/32", 3, "127.0.0.1 127.0.0.1 127.0.0.1", 1},
		{"127.0.0.2/31", 3, "127.0.0.2 127.0.0.3 127.0.0.2", 2},
		{"::1/128", 2, "::1 ::1", 1},
	}
	for _, tt := range tests {
		got, distinct := sourceAddrs(netip.MustParsePrefix(tt.prefix), tt.n)
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if strings.Join(s, " ") != tt.want || distinct != tt.wantDistinct {
			t.Errorf("sourceAddrs(%s, %d) = %v, %d; want %s, %d", tt.prefix, tt.n, s, distinct, tt.want, tt.wantDistinct)
		}
	}
	if got, n := sourceAddrs(netip.Prefix{}, 4); got != nil || n != 0 {
		t.Errorf("sourceAddrs(zero) = %v, %d; want nil, 0", got, n)
	}
}

func TestReadHashes(t *testing.T) {
	in := "# whitelist\n\n" + strings.Repeat("ab", 20) + "\n  " + strings.Repeat("CD", 32) + "  \n"
	hs, err := ReadHashes(strings.NewReader(in))
	if err != nil || len(hs) != 2 || hs[0][0] != 0xab || hs[1][19] != 0xcd {
		t.Fatalf("ReadHashes = %v, %v; want two hashes", hs, err)
	}
	_, err = ReadHashes(strings.NewReader(strings.Repeat("ab", 20) + "\nnope\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "line 2: ") {
		t.Errorf("ReadHashes(bad line 2) = %v, want an error naming line 2", err)
	}
	a, b := GenerateHashes(3), GenerateHashes(3)
	if a[0] != b[0] || a[0] == a[1] {
		t.Errorf("GenerateHashes is not deterministic and distinct: %v %v", a, b)
	}
}
