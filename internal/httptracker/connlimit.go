package httptracker

import (
	"io"
	"net"
	"net/http"

	"warden/internal/limit"
)

// ConnLimiter is the tracker's sharing of connection slots (see
// limitListener) for another of warden's HTTP listeners, the web seed, so
// that both hold the same way under a connection flood and agree with the
// guard on what one source and one prefix are. It has no trusted proxies.
type ConnLimiter struct {
	l     *limitListener
	stats counters
}

// ConnLimits are the caps a ConnLimiter enforces; each must be at least 1.
type ConnLimits struct {
	Max, PerSource, PerPrefix int
}

// ConnStats counts a ConnLimiter's connections.
type ConnStats struct {
	// Open are the connections open now.
	Open uint64 `json:"conns_open"`
	// Refused are connections closed at accept: a banned or blocklisted
	// source, a source or prefix at its cap, or every slot taken with no
	// fair victim.
	Refused uint64 `json:"conns_refused"`
	// Evicted are idle (or stuck) connections closed to let another in.
	Evicted uint64 `json:"conns_evicted"`
}

// LimitConns wraps ln, which it then owns, in the connection limits. guard
// may be nil. Serve through it with an http.Server given to Attach.
func LimitConns(ln net.Listener, guard *limit.Guard, lim ConnLimits) *ConnLimiter {
	c := &ConnLimiter{}
	c.l = newLimitListener(ln, guard, nil, connLimits{
		max:       lim.Max,
		perSource: lim.PerSource,
		perPrefix: lim.PerPrefix,
		perProxy:  1, // no trusted proxies, so never used
	}, &c.stats)
	return c
}

// Accept returns the next connection within the limits.
func (c *ConnLimiter) Accept() (net.Conn, error) { return c.l.Accept() }

// Close closes the listener; open connections are the server's to close.
func (c *ConnLimiter) Close() error { return c.l.Close() }

// Addr returns the listener's address.
func (c *ConnLimiter) Addr() net.Addr { return c.l.Addr() }

// Attach makes srv tell the limiter each connection's state, which the
// choice of a connection to close depends on, and close the connections
// that never sent a request once it shuts down. Call it before serving.
func (c *ConnLimiter) Attach(srv *http.Server) {
	srv.ConnState = c.l.track
	srv.RegisterOnShutdown(c.l.closeFresh)
}

// Stats returns the connection counters. It does not block or allocate.
func (c *ConnLimiter) Stats() ConnStats {
	return ConnStats{
		Open:    uint64(c.l.openNow.Load()),
		Refused: c.stats.connsRefused.n.Load(),
		Evicted: c.stats.connsEvicted.n.Load(),
	}
}

// ReadFrom hands the copy to the wrapped connection's own ReadFrom, so that
// net/http's copy of a file to a TCP connection (ServeContent, io.Copy of
// an *os.File) still becomes sendfile(2) through the wrapper.
func (c *limitConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides every method but Write, so io.Copy does not call back
// into ReadFrom.
type writerOnly struct{ io.Writer }
