package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"warden/internal/admin"
	"warden/internal/config"
	"warden/internal/httptracker"
	"warden/internal/limit"
	"warden/internal/registry"
	"warden/internal/swarm"
	"warden/internal/swarm/memswarm"
	"warden/internal/tracker"
	"warden/internal/udptracker"
)

const serveUsage = `usage: warden serve [flags]

Runs the tracker: HTTP announce and scrape, UDP (BEP 15), and the admin API
on its own loopback listener. With no flags and no config file it serves
HTTP and UDP on :6969 and the admin API on 127.0.0.1:7070, keeping state in
./warden-data. Flags override the config file. SIGINT or SIGTERM stops it
after in-flight requests finish.

flags:
`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	def := config.Default()
	configPath := fs.String("config", "", "TOML config `file` (see warden.example.toml)")
	httpAddr := fs.String("http", def.HTTP.Listen, "HTTP tracker `address`; empty disables it")
	udpAddr := fs.String("udp", def.UDP.Listen, "UDP tracker `address`; empty disables it")
	adminAddr := fs.String("admin", def.Admin.Listen, "admin API `address`; empty disables it")
	mode := fs.String("mode", def.Tracker.Mode.String(), "tracking `mode`: "+strings.Join(tracker.Modes, ", "))
	data := fs.String("data", def.Data, "state `directory`")
	logLevel := fs.String("log-level", def.Log.Level, "log `level`: debug, info, warn, error")
	logFormat := fs.String("log-format", def.Log.Format, "log `format`: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))}
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
	return serve(ctx, cfg, slog.New(handler))
}

// stats is what GET /stats on the admin API returns.
type stats struct {
	Version  string             `json:"version"`
	Uptime   string             `json:"uptime"`
	Mode     tracker.Mode       `json:"mode"`
	Registry int                `json:"registered"`
	Swarm    swarm.Stats        `json:"swarm"`
	Rejected tracker.Rejected   `json:"rejected"`
	Limit    limit.Stats        `json:"limit"`
	HTTP     *httptracker.Stats `json:"http,omitempty"`
	UDP      *udptracker.Stats  `json:"udp,omitempty"`
}

// registryFile is the registry's database in the data directory.
const registryFile = "registry.db"

// serve builds every part from cfg, runs them until ctx is done, and stops
// them all if one fails.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.Info("starting", "version", versionString(), "config", cfg)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	started := time.Now()
	reg, err := registry.Open(filepath.Join(cfg.Data, registryFile), log)
	if err != nil {
		return err
	}
	defer reg.Close()
	// Loading a large registry leaves several times the snapshot's size in
	// garbage (rows, entries); give those pages back to the OS now rather
	// than carry them as RSS until the runtime gets round to it.
	debug.FreeOSMemory()
	store := memswarm.New(cfg.Swarm)
	tr := tracker.New(store, reg, cfg.Tracker, log)
	guard, err := limit.NewGuard(cfg.Limit, log)
	if err != nil {
		return err
	}

	runners := []func(context.Context) error{store.Run, reg.Run, guard.Run}
	var httpSrv *httptracker.Server
	var udpSrv *udptracker.Server
	if cfg.HTTP.Listen != "" {
		httpSrv, err = httptracker.Listen(cfg.HTTP.Listen, tr, guard, cfg.HTTP, log)
		if err != nil {
			return err
		}
		runners = append(runners, httpSrv.Run)
	}
	if cfg.UDP.Listen != "" {
		udpSrv, err = udptracker.Listen(cfg.UDP.Listen, tr, guard, cfg.UDP, log)
		if err != nil {
			return err
		}
		runners = append(runners, udpSrv.Run)
	}
	if cfg.Admin.Listen != "" {
		token, created, err := admin.LoadOrCreateToken(cfg.Data)
		if err != nil {
			return err
		}
		if created {
			log.Info("admin token created", "file", filepath.Join(cfg.Data, admin.TokenFile))
		}
		adminSrv, err := admin.Listen(cfg.Admin, admin.Deps{Token: token, Registry: reg, Tracker: tr, Guard: guard, Stats: func() any {
			st := stats{
				Version:  versionString(),
				Uptime:   time.Since(started).Round(time.Second).String(),
				Mode:     cfg.Tracker.Mode,
				Registry: reg.Len(),
				Swarm:    store.Stats(),
				Rejected: tr.Rejected(10),
				Limit:    guard.Limiter().Stats(),
			}
			if httpSrv != nil {
				s := httpSrv.Stats()
				st.HTTP = &s
			}
			if udpSrv != nil {
				s := udpSrv.Stats()
				st.UDP = &s
			}
			return st
		}}, log)
		if err != nil {
			return err
		}
		log.Info("admin api listening", "addr", adminSrv.Addr().String())
		runners = append(runners, adminSrv.Run)
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, run := range runners {
		g.Go(func() error { return run(gctx) })
	}
	err = g.Wait()
	log.Info("stopped", "uptime", time.Since(started).Round(time.Second).String())
	return err
}
