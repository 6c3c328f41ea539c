package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"warden/internal/admin"
	"warden/internal/config"
	"warden/internal/confkey"
	"warden/internal/dashboard"
	"warden/internal/evidence"
	"warden/internal/httptracker"
	"warden/internal/limit"
	"warden/internal/publish"
	"warden/internal/registry"
	"warden/internal/sensor"
	"warden/internal/status"
	"warden/internal/swarm/memswarm"
	"warden/internal/tracker"
	"warden/internal/udptracker"
	"warden/internal/webseed"
)

var serveCommand = &command{
	name:    "serve",
	args:    "[flags]",
	summary: "run the tracker (HTTP and UDP, plus the admin API)",
	help: `
Runs the tracker: HTTP announce and scrape, UDP (BEP 15), and the admin API
on its own loopback listener. With no flags and no config file it serves
HTTP and UDP on :6969 and the admin API on 127.0.0.1:7070, keeping state in
./warden-data. Flags override the config file. SIGINT or SIGTERM stops it
after in-flight requests finish.`,
	setup: setupServe,
}

func setupServe(fs *flag.FlagSet) runFunc {
	def := config.Default()
	configPath := fs.String("config", "", "TOML config `file` (see warden.example.toml)")
	httpAddr := fs.String("http", def.HTTP.Listen, "HTTP tracker `address`; empty disables it")
	udpAddr := fs.String("udp", def.UDP.Listen, "UDP tracker `address`; empty disables it")
	adminAddr := fs.String("admin", def.Admin.Listen, "admin API `address`; empty disables it")
	mode := fs.String("mode", def.Tracker.Mode.String(), "tracking `mode`: "+strings.Join(tracker.Modes, ", "))
	data := fs.String("data", def.Data, "state `directory`")
	logLevel := fs.String("log-level", def.Log.Level, "log `level`: debug, info, warn, error")
	logFormat := fs.String("log-format", def.Log.Format, "log `format`: text or json")
	webAddr := fs.String("web", def.Web.Listen, "web listener `address` (content, torrents, feeds); empty disables it")
	content := fs.String("content", def.Web.ContentDir, "content `directory` the web listener serves under /content/")
	publishWatch := fs.Bool("publish", def.Publish.Watch, "publish the content directory continuously (torrents, registry, feeds)")
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("serve: unexpected argument %q", args[0])}
		}
		cfg := def
		if *configPath != "" {
			var err error
			if cfg, err = config.Load(*configPath); err != nil {
				return err
			}
		}
		var flagErr error
		fs.Visit(func(f *flag.Flag) { // flags given on the command line win over the file
			switch f.Name {
			case "http":
				cfg.HTTP.Listen = *httpAddr
			case "udp":
				cfg.UDP.Listen = *udpAddr
			case "admin":
				cfg.Admin.Listen = *adminAddr
			case "mode":
				flagErr = cfg.Tracker.Mode.UnmarshalText([]byte(*mode))
			case "data":
				cfg.Data = *data
			case "log-level":
				cfg.Log.Level = *logLevel
			case "log-format":
				cfg.Log.Format = *logFormat
			case "web":
				cfg.Web.Listen = *webAddr
			case "content":
				cfg.Web.ContentDir = *content
			case "publish":
				cfg.Publish.Watch = *publishWatch
			}
		})
		if flagErr != nil {
			return usageError{fmt.Errorf("serve: --%w", flagErr)}
		}
		if err := cfg.Validate(); err != nil {
			return usageError{fmt.Errorf("serve: %w", err)}
		}
		handler, err := cfg.Log.Handler(os.Stderr)
		if err != nil {
			return err
		}
		log := slog.New(handler)
		s, err := newServer(cfg, log)
		if err != nil {
			return err
		}
		return s.run(ctx)
	}
}

// registryFile is the registry's database in the data directory.
const registryFile = "registry.db"

// server owns the parts of warden serve: it builds them from the config,
// connects the sinks through which the request path reports who knocks,
// runs them together and reports their status.
type server struct {
	cfg     config.Config
	log     *slog.Logger
	started time.Time

	reg     *registry.Registry
	store   *memswarm.Store
	tracker *tracker.Tracker
	guard   *limit.Guard
	knocks  *evidence.Knocks

	http  *httptracker.Server // nil when disabled, as are udp and admin
	udp   *udptracker.Server
	admin *admin.Server
	dash  *dashboard.Dashboard // the admin listener's live pages; nil with it

	web      *webseed.Server // nil when disabled, as are webConns and pub
	webConns *httptracker.ConnLimiter
	pub      *publish.Publisher

	sensor *sensor.Sensor // nil unless evidence.sensor is on (openSensor)

	ev *evidenceParts // nil when evidence.enabled is false (openEvidence)
}

// newServer builds every part and binds every listener, so that a bad
// setting or an address in use is reported before anything runs. On
// error, whatever was opened is closed.
func newServer(cfg config.Config, log *slog.Logger) (_ *server, err error) {
	log.Info("starting", "version", versionString(), "config", cfg)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &server{cfg: cfg, log: log, started: time.Now(), knocks: evidence.NewKnocks()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.reg, err = registry.Open(filepath.Join(cfg.Data, registryFile), log); err != nil {
		return nil, registryOpenAdvice(err, cfg.Data)
	}
	// Loading a large registry leaves several times the snapshot's size in
	// garbage (rows, entries); give those pages back to the OS now rather
	// than carry them as RSS until the runtime gets round to it.
	debug.FreeOSMemory()
	s.store = memswarm.New(cfg.Swarm)
	s.tracker = tracker.New(s.store, s.reg, cfg.Tracker, log)
	s.tracker.ReportRefusals(s.knocks)
	if s.guard, err = limit.NewGuard(cfg.Limit, log); err != nil {
		return nil, confkey.In("limit", err) // limit.table_bytes: the system refused…
	}
	s.guard.ReportDrops(s.knocks)
	if cfg.HTTP.Listen != "" {
		if s.http, err = httptracker.Listen(cfg.HTTP.Listen, s.tracker, s.guard, cfg.HTTP, log); err != nil {
			return nil, err
		}
	}
	if cfg.UDP.Listen != "" {
		if s.udp, err = udptracker.Listen(cfg.UDP.Listen, s.tracker, s.guard, cfg.UDP, log); err != nil {
			return nil, err
		}
	}
	if cfg.Admin.Listen != "" {
		if err := s.listenAdmin(); err != nil {
			return nil, err
		}
	}
	if cfg.Web.Listen != "" {
		if err := s.listenWeb(); err != nil {
			return nil, err
		}
	}
	if cfg.Publish.Watch {
		if err := s.openPublisher(); err != nil {
			return nil, err
		}
	}
	if err := s.openEvidence(); err != nil {
		return nil, err
	}
	s.connectEvidence()
	if s.ev != nil {
		if err := s.openSensor(cfg.Evidence.SensorConfig, s.ev.episodes); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *server) listenAdmin() error {
	token, created, err := admin.LoadOrCreateToken(s.cfg.Data)
	if err != nil {
		return err
	}
	if created {
		s.log.Info("admin token created", "file", filepath.Join(s.cfg.Data, admin.TokenFile))
	}
	if s.dash, err = s.newDashboard(token); err != nil {
		return err
	}
	s.admin, err = admin.Listen(s.cfg.Admin, admin.Deps{
		Token:    token,
		Registry: s.reg,
		Guard:    s.guard,
		Knocks:   s.knocks,
		Status:   s.status,
		Metrics:  s.metrics(),
		Episodes: s.episodesAPI(),
		Recorder: s,
		UI:       s.dash,
	}, s.log)
	if err != nil {
		return err
	}
	s.log.Info("admin api listening", "addr", s.admin.Addr().String())
	return nil
}

// run serves until ctx is done or a part fails, then stops every part and
// closes the registry.
func (s *server) run(ctx context.Context) error {
	defer s.close()
	runners := []func(context.Context) error{s.store.Run, s.reg.Run, s.guard.Run}
	if s.http != nil {
		runners = append(runners, s.http.Run)
	}
	if s.udp != nil {
		runners = append(runners, s.udp.Run)
	}
	if s.admin != nil {
		runners = append(runners, s.admin.Run, s.dash.Run)
	}
	if s.web != nil {
		runners = append(runners, s.web.Run)
	}
	if s.pub != nil {
		runners = append(runners, s.pub.Run)
	}
	if s.sensor != nil {
		runners = append(runners, s.sensor.Run)
	}
	runners = append(runners, s.evidenceRunners()...)
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range runners {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error { s.knocks.Run(gctx.Done()); return nil })
	err := g.Wait()
	s.log.Info("stopped", "uptime", time.Since(s.started).Round(time.Second).String())
	return err
}

// close releases what newServer opened. Listeners that never ran are
// closed here; those that ran closed themselves when run returned.
func (s *server) close() {
	if s.http != nil {
		s.http.Close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.web != nil {
		s.web.Close()
	}
	if s.pub != nil {
		s.pub.Close()
	}
	if s.sensor != nil {
		s.sensor.Close()
	}
	s.closeEvidence()
	if s.reg != nil {
		s.reg.Close()
	}
}

// status is what GET /stats shows.
func (s *server) status() status.Snapshot {
	st := status.Snapshot{
		Version:   versionString(),
		Started:   s.started.UTC(),
		Uptime:    status.Duration(time.Since(s.started).Round(time.Second)),
		Mode:      s.cfg.Tracker.Mode,
		Registry:  status.Registry{Entries: s.reg.Len()},
		Swarm:     s.store.Stats(),
		Refused:   s.knocks.Refusals(10),
		Guard:     s.guard.Stats(),
		Offenders: s.knocks.Offenders(10),
	}
	if s.http != nil {
		v := s.http.Stats()
		st.HTTP = &v
	}
	if s.udp != nil {
		v := s.udp.Stats()
		st.UDP = &v
	}
	if s.web != nil {
		st.Web = &status.Web{Stats: s.web.Stats(), Conns: s.webConns.Stats()}
	}
	if s.pub != nil {
		v := s.pub.Stats()
		st.Publish = &v
	}
	s.evidenceStatus(&st)
	if s.sensor != nil {
		v := s.sensor.Stats()
		st.Sensor = &v
	}
	return st
}
