package publish

import (
	"net/url"
	"strings"
	"time"

	"warden/internal/confkey"
	"warden/internal/metainfo"
)

// Config is the [publish] section.
type Config struct {
	// Watch makes warden serve publish its web content directory
	// continuously (web.content_dir): what appears there and stops
	// changing is published, what changes or goes is revoked.
	Watch bool `toml:"watch"`
	// Settle is how long a file's size and times must stay unchanged
	// before it is taken for finished and published.
	Settle time.Duration `toml:"settle"`
	// Poll is how often the directory is looked at. A file is published
	// at most Settle plus Poll after its last write, plus hashing.
	Poll time.Duration `toml:"poll"`
	// Announce are the trackers written into torrents, in tiers (BEP 12):
	// [["udp://t.example:6969/announce", "http://t.example:6969/announce"]].
	// Empty: the tracker's own HTTP and UDP listeners, in one tier.
	Announce [][]string `toml:"announce"`
	// MetaVersion is the kind of torrent made: "hybrid" (default), "1"
	// or "2". Transmission 3 loads only "1".
	MetaVersion string `toml:"meta_version"`
	// PieceSize is the piece length in bytes, a power of two from 16 KiB
	// to 64 MiB; 0 picks it from the size (see warden torrent create).
	PieceSize int64 `toml:"piece_size"`
	// Threads hash each file; 0 means one per core.
	Threads int `toml:"threads"`
	// FeedItems is how many of the newest items each feed lists.
	FeedItems int `toml:"feed_items"`
	// Title is the title of the feed of everything (feeds/all.xml); a
	// show's feed is titled with the show's name.
	Title string `toml:"title"`
}

// DefaultConfig returns watching off, a 5 s stability window looked at
// every 500 ms, hybrid torrents and 100 items a feed.
func DefaultConfig() Config {
	return Config{
		Settle:      5 * time.Second,
		Poll:        500 * time.Millisecond,
		MetaVersion: "hybrid",
		FeedItems:   100,
		Title:       "warden",
	}
}

// Validate returns a *confkey.Error naming the first setting that cannot
// work by its key in the [publish] table. It never corrects a value.
func (c Config) Validate() error {
	switch {
	case c.Settle < 0 || c.Settle > time.Hour:
		return confkey.Errorf("settle", "must be from 0 to 1h, got %v", c.Settle)
	case c.Poll < 10*time.Millisecond || c.Poll > time.Minute:
		return confkey.Errorf("poll", "must be from 10ms to 1m, got %v", c.Poll)
	case c.Threads < 0 || c.Threads > 1024:
		return confkey.Errorf("threads", "must be from 0 (one per core) to 1024, got %d", c.Threads)
	case c.FeedItems < 1 || c.FeedItems > 100_000:
		return confkey.Errorf("feed_items", "must be from 1 to 100000, got %d", c.FeedItems)
	}
	if _, err := metainfo.ParseVersion(c.MetaVersion); err != nil {
		return confkey.Errorf("meta_version", "%v", err)
	}
	if p := c.PieceSize; p != 0 && (p < metainfo.MinPieceLength || p > metainfo.MaxCreatePieceLength || p&(p-1) != 0) {
		return confkey.Errorf("piece_size", "must be 0 (automatic) or a power of two from %d to %d, got %d", metainfo.MinPieceLength, metainfo.MaxCreatePieceLength, p)
	}
	for i, tier := range c.Announce {
		if len(tier) == 0 {
			return confkey.Errorf("announce", "tier %d is empty", i+1)
		}
		for _, u := range tier {
			if err := CheckTrackerURL(u); err != nil {
				return confkey.Errorf("announce", "tier %d: %v", i+1, err)
			}
		}
	}
	return nil
}

// CheckTrackerURL accepts an http, https, udp or wss URL with a host.
func CheckTrackerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "udp", "wss":
	default:
		return &url.Error{Op: "tracker", URL: s, Err: errScheme}
	}
	if u.Host == "" {
		return &url.Error{Op: "tracker", URL: s, Err: errNoHost}
	}
	return nil
}

type constError string

func (e constError) Error() string { return string(e) }

const (
	errScheme = constError("want an http, https, udp or wss URL")
	errNoHost = constError("no host")
)
