// Package admin serves the operator's HTTP API on its own listener, apart
// from the public tracker ports: health and statistics now, the registry's
// authenticated API later. It binds to loopback by default and refuses a
// public address unless the operator says so explicitly.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"
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
// unless AllowPublic is set.
func (c Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	if c.AllowPublic {
		return nil
	}
	if host == "" {
		return errors.New("admin: listen: " + c.Listen + " listens on every interface; use a loopback or private address, or set allow_public")
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("admin: listen: host %q must be an IP address or localhost", host)
	}
	if ip.IsUnspecified() {
		return errors.New("admin: listen: " + c.Listen + " listens on every interface; use a loopback or private address, or set allow_public")
	}
	if !ip.IsLoopback() && !ip.IsPrivate() {
		return errors.New("admin: listen: " + c.Listen + " is a public address; use a loopback or private address, or set allow_public")
	}
	return nil
}

// Server is the admin HTTP server.
type Server struct {
	ln    net.Listener
	srv   *http.Server
	stats func() any
	log   *slog.Logger
}

// Listen binds the admin address. stats is called for each GET /stats and
// its result is written as JSON.
func Listen(cfg Config, stats func() any, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s := &Server{ln: ln, stats: stats, log: log.With("component", "admin")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /stats", s.handleStats)
	s.srv = &http.Server{
		Handler:           mux,
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

// Run serves until ctx is done, then shuts down within five seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
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

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.stats())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
