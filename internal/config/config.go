// Package config is warden's configuration file: it composes each
// package's Config under one TOML document, starts from their defaults, and
// rejects unknown keys and bad values by name rather than guessing.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"warden/internal/admin"
	"warden/internal/confkey"
	"warden/internal/evidence"
	"warden/internal/httptracker"
	"warden/internal/limit"
	"warden/internal/publish"
	"warden/internal/sensor"
	"warden/internal/swarm"
	"warden/internal/tracker"
	"warden/internal/udptracker"
	"warden/internal/webseed"
)

// Config is the whole configuration of warden serve.
type Config struct {
	// Data is the directory where warden keeps its state.
	Data    string             `toml:"data"`
	Log     Log                `toml:"log"`
	HTTP    httptracker.Config `toml:"http"`
	UDP     udptracker.Config  `toml:"udp"`
	Admin   admin.Config       `toml:"admin"`
	Tracker tracker.Config     `toml:"tracker"`
	Swarm   swarm.Config       `toml:"swarm"`
	Limit   limit.Config       `toml:"limit"`
	Web     webseed.Config     `toml:"web"`
	Publish publish.Config     `toml:"publish"`
	// Evidence is the evidence log and its abuse episodes; Alerts the
	// webhook told when an episode opens or escalates.
	Evidence Evidence             `toml:"evidence"`
	Alerts   evidence.AlertConfig `toml:"alerts"`
}

// Evidence is the [evidence] table: the log's retention, and the episodes'
// attribution files, thresholds and quiet period, flattened into one
// table as the operator writes them (evidence.retention,
// evidence.quiet_period).
type Evidence struct {
	// Enabled keeps the evidence log (DATA/evidence.db) and its episodes;
	// on by default.
	Enabled bool `toml:"enabled"`
	evidence.Config
	evidence.EpisodeConfig
	// SensorConfig is the SYN and kernel-drop sensor (evidence.sensor,
	// off by default: it needs CAP_NET_RAW), which reports to the
	// episodes.
	SensorConfig
}

// SensorConfig names sensor.Config apart from evidence.Config, so both can
// be flattened into [evidence].
type SensorConfig = sensor.Config

// Validate checks both parts; its errors name keys of the table.
func (e Evidence) Validate() error {
	if !e.Enabled {
		if e.SensorConfig.Enabled {
			return confkey.Errorf("sensor", "needs enabled = true: the sensor reports to the episodes")
		}
		return nil
	}
	if err := e.SensorConfig.Validate(); err != nil {
		return err
	}
	if err := e.Config.Validate(); err != nil {
		return err
	}
	return e.EpisodeConfig.Validate()
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

// Default is the configuration warden serve runs with when given no file.
func Default() Config {
	return Config{
		Data:    "./warden-data",
		Log:     Log{Level: "info", Format: "text"},
		HTTP:    httptracker.DefaultConfig(),
		UDP:     udptracker.DefaultConfig(),
		Admin:   admin.DefaultConfig(),
		Tracker: tracker.DefaultConfig(),
		Swarm:   swarm.DefaultConfig(),
		Limit:   limit.DefaultConfig(),
		Web:     webseed.DefaultConfig(),
		Publish: publish.DefaultConfig(),
		Evidence: Evidence{
			Enabled:       true,
			Config:        evidence.DefaultConfig(),
			EpisodeConfig: evidence.DefaultEpisodeConfig(),
			SensorConfig:  sensor.DefaultConfig(),
		},
	}
}

// Load reads a TOML file over the defaults. Keys the file sets replace the
// defaults; a key warden does not know is an error, so a typo never passes
// silently.
func Load(path string) (Config, error) {
	cfg := Default()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return cfg, nil
}

// Validate checks every part and returns the first problem as a
// *confkey.Error naming its key as the file spells it ("udp.workers").
func (c Config) Validate() error {
	if c.Data == "" {
		return confkey.Errorf("data", "must name a directory")
	}
	if _, err := c.Log.Handler(os.Stderr); err != nil {
		return err
	}
	if c.HTTP.Listen == "" && c.UDP.Listen == "" {
		return confkey.Errorf("http.listen", "is empty and so is udp.listen: nothing to serve")
	}
	// A table's key is the toml tag of its field in Config.
	parts := []struct {
		table string
		skip  bool // the part is off
		v     interface{ Validate() error }
	}{
		{"http", c.HTTP.Listen == "", c.HTTP},
		{"udp", c.UDP.Listen == "", c.UDP},
		{"admin", false, c.Admin},
		{"tracker", false, c.Tracker},
		{"swarm", false, c.Swarm},
		{"limit", false, c.Limit},
		{"web", c.Web.Listen == "", c.Web},
		{"publish", false, c.Publish},
		{"evidence", false, c.Evidence},
		{"alerts", !c.Evidence.Enabled, c.Alerts},
	}
	for _, p := range parts {
		if p.skip {
			continue
		}
		if err := confkey.In(p.table, p.v.Validate()); err != nil {
			return err
		}
	}
	if c.Publish.Watch && c.Web.Listen == "" {
		return confkey.Errorf("publish.watch", "needs the web listener (web.listen and web.content_dir): it serves what is published")
	}
	return nil
}

// Handler returns the slog handler the log settings describe.
func (l Log) Handler(w *os.File) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, confkey.Errorf("log.level", "%q is not debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.Format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, confkey.Errorf("log.format", "%q is not text or json", l.Format)
}
