package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"warden/internal/admin"
	"warden/internal/config"
	"warden/internal/httptracker"
	"warden/internal/metainfo"
	"warden/internal/publish"
	"warden/internal/registry"
	"warden/internal/webseed"
)

var publishCommand = &command{
	name:    "publish",
	args:    "DIR [flags]",
	summary: "publish a content directory: torrents, registration and feeds",
	help: `
Makes one pass over DIR, the content directory the web listener serves
(web.content_dir): every file that has stopped changing (size and times
unchanged for --settle) becomes a torrent with the web seed and the
trackers, is registered with the running tracker through the admin API,
and is listed in the feed of its show (a directory at the top of DIR) and
in the feed of everything; a file removed or replaced since has its
torrent revoked, with the reason. It waits for files still being written.
The torrents, feeds and what was published (so nothing unchanged is hashed
again) are kept in DATA/publish, which warden serve --web serves. warden
serve --publish does the same continuously; only one may run at a time.

The web seed URL is --public-url, web.public_url, or http://web.listen;
the trackers --announce, publish.announce, or the tracker's own http.listen
and udp.listen (read from --config).`,
	setup: setupPublish,
}

func setupPublish(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	configPath := fs.String("config", "", "TOML config `file` of the server, for [web], [publish] and the tracker's addresses")
	publicURL := fs.String("public-url", "", "the web listener's `URL` as clients reach it (default web.public_url)")
	var trackers tierFlag
	fs.Var(&trackers, "announce", "tracker `URL`s; repeat for more tiers, commas within a tier (default publish.announce)")
	version := fs.String("meta-version", "", "`version`: 1, 2 or hybrid (default publish.meta_version)")
	settle := fs.String("settle", "", "how long a file must stay unchanged, e.g. 5s (default publish.settle)")
	return func(ctx context.Context, o streams, args []string) error {
		if err := wantArgs("publish", args, 1, "the content DIR"); err != nil {
			return err
		}
		cfg := config.Default()
		if *configPath != "" {
			var err error
			if cfg, err = config.Load(*configPath); err != nil {
				return err
			}
		}
		if isFlagSet(fs, "data") {
			cfg.Data = a.data
		} else {
			a.data = cfg.Data // the token is where the server keeps it
		}
		pc := cfg.Publish
		if *version != "" {
			pc.MetaVersion = *version
		}
		if *settle != "" {
			d, err := time.ParseDuration(*settle)
			if err != nil {
				return usageError{fmt.Errorf("publish: --settle %q: want a duration such as 5s", *settle)}
			}
			pc.Settle = d
		}
		if err := pc.Validate(); err != nil {
			return usageError{fmt.Errorf("publish: %w", err)}
		}
		base, err := publishURL(*publicURL, cfg.Web)
		if err != nil {
			return usageError{fmt.Errorf("publish: %w", err)}
		}
		announce := [][]string(trackers)
		if len(announce) == 0 {
			announce = pc.Announce
		}
		if len(announce) == 0 {
			if announce, err = ownTrackers(cfg.HTTP.Listen, cfg.UDP.Listen); err != nil {
				return usageError{fmt.Errorf("publish: %w (give --announce)", err)}
			}
		}
		client, err := a.client()
		if err != nil {
			return err
		}
		p, err := publish.Open(publish.Options{
			Config: pc, ContentDir: args[0], Dir: filepath.Join(cfg.Data, publishDir),
			PublicURL: base, Announce: announce, Registry: adminRegistry{client},
			CreatedBy: "warden " + versionString(),
			Log:       slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			return err
		}
		defer p.Close()
		return publishOnce(ctx, o, p, pc, a.json)
	}
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// publishDir is where publishing keeps its state, below the data directory.
const publishDir = "publish"

// publishOnce scans until no file is left settling, printing what it did.
// It fails if a file could not be published or a registry call failed.
func publishOnce(ctx context.Context, o streams, p *publish.Publisher, pc publish.Config, asJSON bool) error {
	var all publish.Report
	waited := false
	for {
		rep, err := p.Scan(ctx)
		all.Published = append(all.Published, rep.Published...)
		all.Revoked = append(all.Revoked, rep.Revoked...)
		if !asJSON {
			for _, path := range rep.Published {
				fmt.Fprintf(o.stdout, "published %s\n", path)
			}
			for _, path := range rep.Revoked {
				fmt.Fprintf(o.stdout, "revoked   %s\n", path)
			}
		}
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		all.Problems, all.Settling = rep.Problems, rep.Settling
		if rep.Settling == 0 {
			break
		}
		if !waited {
			fmt.Fprintf(o.stderr, "waiting for %d file(s) still changing to settle (%v unchanged)\n", rep.Settling, pc.Settle)
			waited = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pc.Poll):
		}
	}
	if asJSON {
		if err := writeJSONTo(o.stdout, publishJSON{Published: all.Published, Revoked: all.Revoked, Problems: all.Problems}); err != nil {
			return err
		}
	} else {
		st := p.Stats()
		fmt.Fprintf(o.stdout, "%d published now (%d new, %d revoked)\n", st.Items, len(all.Published), len(all.Revoked))
		for _, pr := range all.Problems {
			fmt.Fprintf(o.stderr, "not published: %s\n", pr)
		}
	}
	if len(all.Problems) > 0 {
		return fmt.Errorf("publish: %d file(s) not published", len(all.Problems))
	}
	return nil
}

type publishJSON struct {
	Published []string `json:"published"`
	Revoked   []string `json:"revoked"`
	Problems  []string `json:"problems"`
}

// publishURL is the web listener's base URL: the flag, web.public_url, or
// http://web.listen.
func publishURL(flagURL string, web webseed.Config) (string, error) {
	switch {
	case flagURL != "":
		return webseed.ParsePublicURL(flagURL)
	case web.PublicURL != "":
		return webseed.ParsePublicURL(web.PublicURL)
	case web.Listen != "":
		return webseed.DefaultPublicURL(web.Listen)
	}
	return "", errors.New("no web listener to point torrents at: give --public-url, or --config with web.public_url or web.listen")
}

// ownTrackers are the tracker's own announce URLs, in one tier: its HTTP
// and UDP listeners, as clients reach them.
func ownTrackers(httpAddr, udpAddr string) ([][]string, error) {
	var tier []string
	for _, l := range []struct{ scheme, addr string }{{"udp", udpAddr}, {"http", httpAddr}} {
		if l.addr == "" {
			continue
		}
		base, err := webseed.DefaultPublicURL(l.addr) // http://host:port, a wildcard made the host name
		if err != nil {
			return nil, err
		}
		host := base[len("http://"):]
		tier = append(tier, l.scheme+"://"+host+"/announce")
	}
	if len(tier) == 0 {
		return nil, errors.New("no tracker listener (http.listen, udp.listen) to announce to")
	}
	return [][]string{tier}, nil
}

// adminRegistry is publish's Registry through the admin API, for the
// publish command; warden serve uses the registry itself.
type adminRegistry struct{ c *admin.Client }

func (a adminRegistry) Register(ctx context.Context, h metainfo.Hashes) error {
	resp, err := a.c.Add(ctx, []admin.AddTorrent{addTorrentOf(h)})
	if err != nil {
		return err
	}
	if len(resp.Torrents) == 1 && resp.Torrents[0].State == registry.Revoked {
		_, err = a.c.Restore(ctx, publish.WireHash(h).String())
	}
	return err
}

func (a adminRegistry) Revoke(ctx context.Context, h metainfo.Hashes, reason string) error {
	_, err := a.c.Revoke(ctx, publish.WireHash(h).String(), reason)
	var ae *admin.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// listenWeb binds the web listener, behind the same connection slots and
// guard as the HTTP tracker, serving the content directory and what
// publishing keeps in DATA/publish (whether this server publishes or
// warden publish does).
func (s *server) listenWeb() error {
	filter := s.guard
	if !s.cfg.Web.KernelBans {
		filter = nil
	}
	ln, err := httptracker.ListenTCP(s.cfg.Web.Listen, filter, s.log.With("component", "web"))
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	c := s.cfg.Web
	s.webConns = httptracker.LimitConns(ln, s.guard, httptracker.ConnLimits{
		Max: c.MaxConns, PerSource: c.MaxConnsPerSource, PerPrefix: c.MaxConnsPerPrefix,
	})
	torrents, feeds := publish.Dirs(filepath.Join(s.cfg.Data, publishDir))
	s.web, err = webseed.New(c, webseed.Deps{
		Gate:  s.webConns,
		Dirs:  webseed.Dirs{Content: c.ContentDir, Torrents: torrents, Feeds: feeds},
		Guard: s.guard,
		Limit: s.cfg.Limit,
	}, s.log)
	if err != nil {
		s.webConns.Close()
		return err
	}
	return nil
}

// openPublisher starts publishing the web content directory: torrents
// with the web listener as web seed and this tracker's listeners (or
// publish.announce) as trackers, registered in the registry itself.
func (s *server) openPublisher() error {
	base, err := s.web.PublicURL()
	if err != nil {
		return fmt.Errorf("publish: the web listener's URL: %w (set web.public_url)", err)
	}
	announce := s.cfg.Publish.Announce
	if len(announce) == 0 {
		var httpAddr, udpAddr string
		if s.http != nil {
			httpAddr = s.http.Addr().String()
		}
		if s.udp != nil {
			udpAddr = s.udp.Addr().String()
		}
		if announce, err = ownTrackers(httpAddr, udpAddr); err != nil {
			return fmt.Errorf("publish: %w (set publish.announce)", err)
		}
	}
	s.pub, err = publish.Open(publish.Options{
		Config: s.cfg.Publish, ContentDir: s.cfg.Web.ContentDir, Dir: filepath.Join(s.cfg.Data, publishDir),
		PublicURL: base, Announce: announce, Registry: publish.Local(s.reg, "publish"),
		CreatedBy: "warden " + versionString(), Log: s.log,
	})
	if err != nil {
		return err
	}
	s.log.Info("publishing", "content", s.cfg.Web.ContentDir, "web_seed", base+"/content/", "announce", announce)
	return nil
}
