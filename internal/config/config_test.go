package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"warden/internal/confkey"
	"warden/internal/swarm"
)

const example = "../../warden.example.toml"

func TestExampleIsTheDefault(t *testing.T) {
	got, err := Load(example)
	if err != nil {
		t.Fatalf("Load(%s): %v", example, err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("example config differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("example config invalid: %v", err)
	}
}

// TestExampleDocumentsEveryKey walks the Config struct and checks that each
// toml key appears in the example, set or commented out.
func TestExampleDocumentsEveryKey(t *testing.T) {
	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if f.Anonymous && key == "" && f.Type.Kind() == reflect.Struct {
				walk(prefix, f.Type) // flattened into its table, as toml decodes it
				continue
			}
			if key == "" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
				if !strings.Contains(string(text), "["+key+"]") {
					t.Errorf("example has no [%s] table", key)
				}
				walk(key+".", f.Type)
				continue
			}
			re := regexp.MustCompile(`(?m)^#? ?` + regexp.QuoteMeta(key) + ` = `)
			if !re.Match(text) {
				t.Errorf("example does not document %s%s", prefix, key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, file, wantErr string
	}{
		{"unknown key", "data = \"d\"\nmood = 1\n", "unknown keys: mood"},
		{"unknown mode", "[tracker]\nmode = \"closed\"\n", `mode: "closed" is not one of`},
		{"unknown nested key", "[udp]\nlisten = \":1\"\nworkerz = 3\n", "unknown keys: udp.workerz"},
		{"wrong type", "[tracker]\nmax_numwant = \"many\"\n", "max_numwant"},
		{"bad duration", "[tracker]\nannounce_interval = \"soon\"\n", "announce_interval"},
		{"syntax", "mode = \n", "config"},
		{"short cookie secret", "[udp]\ncookie_secret = \"c0ffee\"\n", "must be at least 32 bytes, got 3"},
		{"cookie secret not hex or base64", "[udp]\ncookie_secret = \"s3cr3t!!\"\n", "must be hex or base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.toml")
			os.WriteFile(path, []byte(tt.file), 0o600)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load(%q) = %v, want error containing %q", tt.file, err, tt.wantErr)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestLoadCookieSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.toml")
	hex := strings.Repeat("5a", 32)
	os.WriteFile(path, []byte("[udp]\ncookie_secret = \""+hex+"\"\n"), 0o600)
	c, err := Load(path)
	if err != nil || len(c.UDP.CookieSecret) != 32 || c.UDP.CookieSecret[0] != 0x5a {
		t.Fatalf("Load = %v; secret of %d bytes", err, len(c.UDP.CookieSecret))
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"no data dir", func(c *Config) { c.Data = "" }, "data: must name a directory"},
		{"nothing to serve", func(c *Config) { c.HTTP.Listen, c.UDP.Listen = "", "" }, "http.listen: is empty and so is udp.listen: nothing to serve"},
		{"http only", func(c *Config) { c.UDP.Listen = "" }, ""},
		{"udp off skips its checks", func(c *Config) { c.UDP.Listen, c.UDP.Workers = "", 0 }, ""},
		{"bad log level", func(c *Config) { c.Log.Level = "loud" }, `log.level: "loud" is not debug, info, warn or error`},
		{"bad log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not text or json`},
		{"bad http", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.1/8"} }, `http.trusted_proxies[0]: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{"bad udp", func(c *Config) { c.UDP.Workers = 0 }, "udp.workers: must be 1-1024, got 0"},
		{"public admin", func(c *Config) { c.Admin.Listen = "0.0.0.0:7070" }, "admin.listen: 0.0.0.0:7070 listens on every interface; use a loopback or private address, or set allow_public"},
		{"bad tracker", func(c *Config) { c.Tracker.MaxNumWant = -1 }, "tracker.max_numwant: must be 0-1000, got -1"},
		{"bad swarm", func(c *Config) { c.Swarm.PeerTTL = 0 }, "swarm.peer_ttl: must be between 1s and 8h0m0s, got 0s"},
		{"peer_ttl past the stamps", func(c *Config) { c.Swarm.PeerTTL = swarm.MaxPeerTTL + 1 }, "swarm.peer_ttl: must be between 1s and 8h0m0s, got 8h0m0.000000001s"},
		{"bad limit", func(c *Config) { c.Limit.MaxBans = 0 }, "limit.max_bans: must be 1-16777216, got 0"},
		{"bad evidence retention", func(c *Config) { c.Evidence.Retention = time.Minute }, "evidence.retention: must be 0 (keep forever) or at least 1h, got 1m0s"},
		{"bad quiet period", func(c *Config) { c.Evidence.QuietPeriod = 0 }, "evidence.quiet_period: must be between 1s and 24h, got 0s"},
		{"evidence off skips its checks", func(c *Config) { c.Evidence.Enabled, c.Evidence.QuietPeriod = false, 0 }, ""},
		{"webhook without secret", func(c *Config) { c.Alerts.WebhookURL = "https://example.net/hook" }, "alerts.webhook_secret: must be at least 16 bytes: the receiver checks each alert's HMAC with it"},
		{"webhook not a URL", func(c *Config) { c.Alerts.WebhookURL, c.Alerts.WebhookSecret = "example.net", "0123456789abcdef" }, `alerts.webhook_url: must be an http or https URL, got "example.net"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			var ce *confkey.Error
			if !errors.As(err, &ce) || !strings.HasPrefix(tt.wantErr, ce.Key+": ") {
				t.Errorf("Validate() = %v, want a confkey.Error whose key starts the message", err)
			}
		})
	}
}
