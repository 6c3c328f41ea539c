package httptracker

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/limit"
	"warden/internal/ratelog"
	"warden/internal/sockfilter"
	"warden/internal/tracker"
)

// Server is the HTTP tracker bound to one TCP listener.
type Server struct {
	cfg     Config
	ln      *limitListener
	addr    netip.AddrPort
	h       *handler
	srv     *http.Server
	log     *slog.Logger
	running atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Listen validates cfg and binds addr now (cfg.Listen if addr is empty), so
// that a port in use is reported before anything runs and ":0" picks a free
// port (see Addr). It starts no goroutine: call Run to serve, or Close to
// release the port without serving. The error names the config field or
// the address that failed.
//
// guard, if not nil, is consulted for every connection and request: a
// blocklisted or banned source's connections are closed as soon as
// accepted, a source over its rate gets a short failure, and one banned
// meanwhile a short failure and a closed connection. Its limiter's
// lengths also say what one source and one prefix are for the connection
// caps. A trusted range wider than a private network is logged as a
// warning: any host in it can choose its own address.
func Listen(addr string, tr *tracker.Tracker, guard *limit.Guard, cfg Config, log *slog.Logger) (*Server, error) {
	if addr == "" {
		addr = cfg.Listen
	} else {
		cfg.Listen = addr
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	header, _ := cfg.clientIPHeader()
	log = log.With("component", "httptracker")
	filter := guard
	if !cfg.KernelBans {
		filter = nil
	}
	tcp, err := ListenTCP(addr, filter, log)
	if err != nil {
		return nil, fmt.Errorf("httptracker: %w", err)
	}
	for i, p := range trusted {
		if why := wideTrusted(p); why != "" {
			log.Warn("trusted_proxies: range too wide to trust", "key", fmt.Sprintf("http.trusted_proxies[%d]", i), "prefix", p.String(), "why", why)
		}
	}
	if filter != nil {
		filter.ExemptFromFilters(trusted)
	}
	h := newHandler(tr, trusted, header, cfg.FullScrape, log)
	h.guard = guard
	ln := newLimitListener(tcp, guard, trusted, connLimits{
		max:       cfg.MaxConns,
		perSource: cfg.MaxConnsPerSource,
		perPrefix: cfg.MaxConnsPerPrefix,
		perProxy:  cfg.MaxConnsPerProxy,
	}, &h.stats)
	s := &Server{
		cfg:  cfg,
		ln:   ln,
		addr: tcp.Addr().(*net.TCPAddr).AddrPort(),
		h:    h,
		log:  log,
	}
	s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// net/http logs its own troubles (accept errors when out of
		// file descriptors, recovered panics); they go to our logger
		// at Warn, at most one line a second.
		ErrorLog:  stdlog.New(httpErrorLog{ratelog.New(log, slog.LevelWarn, time.Second, nil)}, "", 0),
		ConnState: ln.track,
	}
	s.srv.RegisterOnShutdown(ln.closeFresh)
	return s, nil
}

// ListenTCP binds a plain TCP listener on addr (multipath TCP off: it
// takes no socket filter, and BitTorrent clients do not use it) and, with
// a guard, asks it to drop banned and blocklisted sources' connection
// attempts in the kernel (limit.Guard.Filter; nil for none). Where the system
// cannot, that is logged and they are refused at accept instead.
func ListenTCP(addr string, guard *limit.Guard, log *slog.Logger) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if guard != nil {
		if err := guard.Filter(ln.(*net.TCPListener), sockfilter.SYNs); err != nil {
			log.Warn("banned sources' connections are refused at accept, not dropped in the kernel", "addr", ln.Addr().String(), "err", err)
		}
	}
	return ln, nil
}

// Addr returns the address the server is bound to, with the port chosen by
// the system if ":0" was asked for.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Handler returns the server's request handler, for tests through
// net/http/httptest. Requests served through it count in Stats. It reads
// the peer's address from Request.RemoteAddr, which must be ip:port.
func (s *Server) Handler() http.Handler { return s.h }

// Stats returns the request counters. It does not block or allocate.
func (s *Server) Stats() Stats {
	c := &s.h.stats
	st := Stats{
		AnnouncesOK:     c.announcesOK.n.Load(),
		AnnouncesFailed: c.announcesFailed.n.Load(),
		ScrapesOK:       c.scrapesOK.n.Load(),
		ScrapesFailed:   c.scrapesFailed.n.Load(),
		BadRequests:     c.badRequests.n.Load(),
		Limited:         c.limited.n.Load(),
		Banned:          c.banned.n.Load(),
		BadForwards:     c.badForwards.n.Load(),
		ConnsOpen:       uint64(s.ln.openNow.Load()),
		ConnsRefused:    c.connsRefused.n.Load(),
		ConnsEvicted:    c.connsEvicted.n.Load(),
	}
	c.req.AddTo(&st.Requests)
	return st
}

// Run serves until ctx is done, then stops accepting, waits up to
// ShutdownTimeout for requests in flight (those whose header was read) to
// be answered, and returns nil. Idle keep-alive connections, and those
// that have not sent a whole request header, are closed at once. If
// requests are still running at the deadline their connections are closed
// and the error says so; if serving fails before ctx is done (or Close is called) Run returns
// that error (nil for Close). Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("httptracker: Run called twice")
	}
	s.log.Info("serving", "addr", s.addr.String(), "trusted_proxies", s.cfg.TrustedProxies, "client_ip_header", s.h.header, "full_scrape", s.cfg.FullScrape)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("httptracker: serve %s: %w", s.addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	if err != nil {
		s.srv.Close()
		return fmt.Errorf("httptracker: shutdown: %w", err)
	}
	s.log.Info("stopped", "addr", s.addr.String())
	return nil
}

// Close closes the listener and every connection at once, without waiting
// for requests in flight; Run then returns nil. It is idempotent and safe
// to call whether or not Run was.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		// Serve closes the listener it was given, but Run may never have
		// handed it over.
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// httpErrorLog turns net/http's log lines into rate-limited slog records:
// some of them (accept errors under a connection flood) an attacker can
// trigger at will.
type httpErrorLog struct{ log *ratelog.Logger }

func (l httpErrorLog) Write(p []byte) (int, error) {
	l.log.Log("net/http: " + strings.TrimSpace(string(p)))
	return len(p), nil
}
