package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

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

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"no data dir", func(c *Config) { c.Data = "" }, "data:"},
		{"nothing to serve", func(c *Config) { c.HTTP.Listen, c.UDP.Listen = "", "" }, "nothing to serve"},
		{"http only", func(c *Config) { c.UDP.Listen = "" }, ""},
		{"bad log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"bad log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"public admin", func(c *Config) { c.Admin.Listen = "0.0.0.0:7070" }, "admin: listen"},
		{"bad tracker", func(c *Config) { c.Tracker.MaxNumWant = -1 }, "max_numwant"},
		{"bad swarm", func(c *Config) { c.Swarm.PeerTTL = 0 }, "peer_ttl"},
		{"peer_ttl past the stamps", func(c *Config) { c.Swarm.PeerTTL = swarm.MaxPeerTTL + 1 }, "peer_ttl"},
		{"bad udp", func(c *Config) { c.UDP.BatchSize = 0 }, "batch_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
