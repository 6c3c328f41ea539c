// Package admin serves the operator's HTTP API on its own listener, apart
// from the public tracker ports: health, statistics (/stats as JSON or a
// page, /metrics for Prometheus), the torrent registry and the refused
// requests. Everything but /healthz needs the bearer token.
// It binds to loopback by default and refuses a public address unless the
// operator says so explicitly.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"warden/internal/confkey"
	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
	"warden/internal/status"
)

// Config configures the admin listener.
type Config struct {
	// Listen is the admin address; empty disables the admin API.
	Listen string `toml:"listen"`
	// AllowPublic permits a listen address that is not loopback or private.
	AllowPublic bool `toml:"allow_public"`
}

// DefaultConfig listens on loopback only.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:7070"} }

// Validate rejects an address that would expose the API to the internet
// unless AllowPublic is set. Its error is a *confkey.Error naming the key
// in the [admin] table.
func (c Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return confkey.Errorf("listen", "must be host:port, got %q", c.Listen)
	}
	if c.AllowPublic {
		return nil
	}
	const advice = "; use a loopback or private address, or set allow_public"
	if host == "" {
		return confkey.Errorf("listen", "%s listens on every interface"+advice, c.Listen)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return confkey.Errorf("listen", "host %q must be an IP address or localhost", host)
	}
	if ip.IsUnspecified() {
		return confkey.Errorf("listen", "%s listens on every interface"+advice, c.Listen)
	}
	if !ip.IsLoopback() && !ip.IsPrivate() {
		return confkey.Errorf("listen", "%s is a public address"+advice, c.Listen)
	}
	return nil
}

// Deps are what the API serves.
type Deps struct {
	Token    Token
	Registry *registry.Registry
	Guard    *limit.Guard
	// Knocks holds who was refused and turned away.
	Knocks *evidence.Knocks
	// Status is called for each GET /stats.
	Status func() status.Snapshot
	// Metrics serves GET /metrics (package metrics); nil leaves it out.
	Metrics http.Handler
	// Episodes serves GET /api/episodes; nil when evidence is off.
	Episodes Episodes
	// Recorder, if not nil, takes the operator's actions into the
	// evidence log.
	Recorder Recorder
	// UI, if not nil, serves the live dashboard under /ui/, and the API
	// also lets in requests its sessions vouch for (package dashboard).
	UI Dashboard
}

// Dashboard is what the API needs of the operator's pages: their routes,
// and whether a request without a bearer token comes from a logged-in
// page (a session cookie, and a CSRF token on changes).
type Dashboard interface {
	Handler() http.Handler
	Authorize(r *http.Request) (actor string, ok bool)
}

// Server is the admin HTTP server.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	deps Deps
	log  *slog.Logger
}

// Listen binds the admin address.
func Listen(cfg Config, deps Deps, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(deps.Token) < minTokenLen {
		return nil, errors.New("admin: no token")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s := &Server{ln: ln, deps: deps, log: log.With("component", "admin")}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler returns the API's handler, for tests.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Close closes the listener and every connection at once; Run then
// returns. It is safe to call whether or not Run was.
func (s *Server) Close() error {
	err := s.srv.Close()
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}

// Run serves until ctx is done, then shuts down within five seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // Close was called
		}
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}
