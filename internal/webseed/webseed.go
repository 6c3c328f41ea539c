// Package webseed is warden's web listener: the published files under
// /content/ (the web seed of every torrent publish makes, BEP 19), the
// .torrent files under /torrents/ and the feeds under /feeds/, on a
// listener of its own so that a flood of the tracker does not take the
// downloads down, nor the reverse.
//
// It owns the HTTP side of serving files: single ranges (206, 416), HEAD,
// If-Range, If-Modified-Since and strong ETags (net/http's ServeContent),
// the kernel's sendfile for the bytes, BEP 47 pads (DIR/.pad/N) answered
// as N zero bytes for clients that take pads for files, and refusing
// every path outside its directories (.., hidden names, symbolic links
// out, through os.Root). Every request is charged to the guard
// (limit.Guard), whose refusals reach the evidence it reports to; the
// bytes sent to each source and prefix are capped in a fixed table of
// buckets (a limit.Limiter of its own, without bans); and connections are
// shared out by the Gate cmd/warden gives it, the HTTP tracker's
// connection slots. What to publish, and the torrents and feeds
// themselves, are package publish's; the directories are only read here.
package webseed

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/limit"
	"warden/internal/ratelog"
)

// Gate is the listener the web seed accepts through: cmd/warden gives it
// httptracker's connection limiter, which Attach hooks into the server.
type Gate interface {
	net.Listener
	Attach(srv *http.Server)
}

// Plain makes a Gate of a bare listener, for tests and tools.
func Plain(ln net.Listener) Gate { return plainGate{ln} }

type plainGate struct{ net.Listener }

func (plainGate) Attach(*http.Server) {}

// Dirs are the directories behind the listener's paths. Torrents and
// Feeds may not exist yet; they are opened once they do.
type Dirs struct {
	Content  string // /content/
	Torrents string // /torrents/
	Feeds    string // /feeds/
}

// Deps are what New needs besides its Config.
type Deps struct {
	Gate  Gate
	Dirs  Dirs
	Guard *limit.Guard // nil: no guard
	// Limit is the [limit] config, whose lengths say what one source and
	// one prefix are for the bandwidth caps.
	Limit limit.Config
}

// Stats counts what the web listener did. Outcomes are indexed by
// Outcome.
type Stats struct {
	Requests map[string]uint64 `json:"requests"`
	// BytesSent are body bytes written (headers not counted).
	BytesSent uint64 `json:"bytes_sent"`
	// BandwidthWaits counts the pauses a reply made for its source's or
	// prefix's bandwidth.
	BandwidthWaits uint64 `json:"bandwidth_waits"`
}

// Server is the web listener.
type Server struct {
	cfg     Config
	gate    Gate
	addr    netip.AddrPort
	h       *handler
	srv     *http.Server
	log     *slog.Logger
	running atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// New builds the web listener on deps.Gate, already bound, which it then
// owns. It validates cfg, opens the content directory and allocates the
// bandwidth table; it starts nothing (see Run).
func New(cfg Config, deps Deps, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	content, err := os.OpenRoot(deps.Dirs.Content)
	if err != nil {
		return nil, fmt.Errorf("web: content directory: %w", err)
	}
	log = log.With("component", "web")
	h := &handler{
		content:    content,
		torrents:   lazyRoot{dir: deps.Dirs.Torrents},
		feeds:      lazyRoot{dir: deps.Dirs.Feeds},
		guard:      deps.Guard,
		stall:      cfg.StallTimeout,
		now:        time.Now,
		refusedLog: ratelog.New(log, slog.LevelWarn, time.Second, nil),
		errLog:     ratelog.New(log, slog.LevelError, time.Second, nil),
	}
	if cfg.MaxBytesPerSec > 0 {
		lc := bandwidthConfig(cfg, deps.Limit)
		if err := lc.Validate(); err != nil {
			content.Close()
			return nil, fmt.Errorf("web: bandwidth caps with the [limit] lengths: %w", err)
		}
		h.bw = limit.New(lc)
		h.bwWait = time.Duration(float64(time.Second) * unit / float64(cfg.MaxBytesPerSec))
	}
	s := &Server{cfg: cfg, gate: deps.Gate, h: h, log: log}
	if a, ok := deps.Gate.Addr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		s.addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// No WriteTimeout: it would bound a whole reply. Each chunk of a
		// reply gets its own deadline (StallTimeout) instead.
		ErrorLog: stdlog.New(httpErrorLog{ratelog.New(log, slog.LevelWarn, time.Second, nil)}, "", 0),
	}
	deps.Gate.Attach(s.srv)
	return s, nil
}

// Addr returns the address the listener is bound to.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// PublicURL is the base URL clients reach the listener at: public_url, or
// http://ADDR with the bound port.
func (s *Server) PublicURL() (string, error) {
	if s.cfg.PublicURL != "" {
		return ParsePublicURL(s.cfg.PublicURL)
	}
	host, _, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return "", err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return DefaultPublicURL(net.JoinHostPort(host, fmt.Sprint(s.addr.Port())))
	}
	return DefaultPublicURL(s.addr.String())
}

// Handler returns the request handler, for tests through httptest.
func (s *Server) Handler() http.Handler { return s.h }

// Stats returns the counters. It allocates the map of outcomes.
func (s *Server) Stats() Stats {
	st := Stats{Requests: make(map[string]uint64, numOutcomes)}
	for o := range numOutcomes {
		st.Requests[o.String()] = s.h.outcomes[o].Load()
	}
	st.BytesSent = s.h.bytes.Load()
	st.BandwidthWaits = s.h.waits.Load()
	return st
}

// Run serves until ctx is done, then stops accepting and waits up to
// ShutdownTimeout for replies under way; those still running then are cut
// off and the error says so. It returns serving's error if that fails
// first, and nil after Close. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("web: Run called twice")
	}
	s.log.Info("serving", "addr", s.addr.String(), "content", s.cfg.ContentDir)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.gate) }()
	select {
	case err := <-errc:
		s.h.close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("web: serve %s: %w", s.addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	s.h.close()
	if err != nil {
		s.srv.Close()
		return fmt.Errorf("web: shutdown: %w", err)
	}
	s.log.Info("stopped", "addr", s.addr.String())
	return nil
}

// Close closes the listener and every connection at once. It is
// idempotent and safe whether or not Run was called.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		if err := s.gate.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
			s.closeErr = err
		}
		if !s.running.Load() {
			s.h.close()
		}
	})
	return s.closeErr
}

func (h *handler) close() {
	h.content.Close()
	h.torrents.close()
	h.feeds.close()
}

// httpErrorLog turns net/http's own log lines into rate-limited records:
// a connection flood can cause them at will.
type httpErrorLog struct{ log *ratelog.Logger }

func (l httpErrorLog) Write(p []byte) (int, error) {
	l.log.Log("net/http: " + strings.TrimSpace(string(p)))
	return len(p), nil
}
