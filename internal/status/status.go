// Package status is the typed picture of a running warden: one Snapshot
// that GET /stats serves as JSON and that metrics will export. Each part
// of warden serve reports through its own Stats type; the server gathers
// them here at read time, so nothing on the request path knows about
// status.
package status

import (
	"time"

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

// Snapshot is warden's state at one moment. A part that is not running
// (a frontend turned off) is nil.
type Snapshot struct {
	Version string       `json:"version"`
	Started time.Time    `json:"started"`
	Uptime  Duration     `json:"uptime"`
	Mode    tracker.Mode `json:"mode"`

	Registry Registry    `json:"registry"`
	Swarm    swarm.Stats `json:"swarm"`
	// Refused are the announces and scrapes refused for torrents this
	// tracker does not track, with the top hashes and sources.
	Refused evidence.Refusals `json:"refused"`
	// Guard is the per-source limiter: its counters, and the top sources
	// it turned away.
	Guard     limit.Stats        `json:"guard"`
	Offenders evidence.Offenders `json:"offenders"`

	HTTP *httptracker.Stats `json:"http,omitempty"`
	UDP  *udptracker.Stats  `json:"udp,omitempty"`

	// Web is the web listener (content, torrents, feeds); Publish the
	// publisher watching its content directory.
	Web     *Web           `json:"web,omitempty"`
	Publish *publish.Stats `json:"publish,omitempty"`

	// Episodes are the abuse episodes: counters, and the open ones (the
	// heaviest few); nil when evidence is off. Evidence is the log's and
	// Alerts the webhook's counters (nil without one).
	Episodes *Episodes            `json:"episodes,omitempty"`
	Evidence *evidence.Stats      `json:"evidence,omitempty"`
	Alerts   *evidence.AlertStats `json:"alerts,omitempty"`

	// Sensor counts the SYNs and kernel-dropped datagrams it saw, its own
	// losses and the kernel's SYN-cookie and listen counters; nil unless
	// evidence.sensor is on.
	Sensor *sensor.Stats `json:"sensor,omitempty"`
}

// Episodes summarizes the abuse episodes for /stats; GET /api/episodes
// has them whole.
type Episodes struct {
	evidence.EpisodeStats
	Open []OpenEpisode `json:"open_episodes"`
}

// OpenEpisode is one open episode in brief.
type OpenEpisode struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Kind       string    `json:"kind"`
	Org        string    `json:"org,omitempty"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	Total      uint64    `json:"total"`
	PeakPerSec float64   `json:"peak_per_sec"`
	Verified   bool      `json:"verified"`
}

// Web is the web listener's requests and connections.
type Web struct {
	webseed.Stats
	Conns httptracker.ConnStats `json:"conns"`
}

// Registry summarizes the registry.
type Registry struct {
	// Entries counts registered torrents, active and revoked.
	Entries int `json:"entries"`
}

// Duration is a time.Duration that reads as "1h2m3s" in JSON.
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
