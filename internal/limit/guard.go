package limit

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Guard is what the frontends consult for each request: the operator's
// static blocklist (reloaded when its file changes) and the Limiter. A nil
// *Guard allows everything, so tests and tools can leave it out.
type Guard struct {
	lim   *Limiter
	conn  *Limiter // UDP connects: drops only (see Config.ConnectRatePerSec)
	block atomic.Pointer[Blocklist]
	file  string
	log   *slog.Logger
	sink  Sink // nil: drops are not reported
}

// Sink is told of every request the guard turns away, for the operator's
// record of who knocks. It is called on the request path, once per
// dropped request of a flood, so it must not block and should not
// allocate.
type Sink interface {
	Dropped(src netip.Addr, v Verdict, now time.Time)
}

// NewGuard returns a guard over new Limiters for cfg. An invalid cfg, or
// a table the system will not map, is a *confkey.Error naming its key in
// the [limit] table (table_bytes, connect_table_bytes). If
// cfg.BlocklistFile is not empty it is read now (an error names the line)
// and watched by Run.
func NewGuard(cfg Config, log *slog.Logger) (*Guard, error) {
	lim, err := newLimiter(cfg, "table_bytes")
	if err != nil {
		return nil, err
	}
	conn, err := newConnectLimiter(cfg)
	if err != nil {
		return nil, err
	}
	g := &Guard{lim: lim, conn: conn, file: cfg.BlocklistFile, log: log.With("component", "guard")}
	if g.file != "" {
		bl, err := readBlocklist(g.file)
		if err != nil {
			return nil, err
		}
		g.block.Store(bl)
	}
	return g, nil
}

// Blocked reports whether src is on the blocklist. It only reads, so the
// frontends may ask it before a source has proven its address.
func (g *Guard) Blocked(src netip.Addr) bool {
	if g == nil {
		return false
	}
	return g.block.Load().Contains(src.Unmap())
}

// Check charges one request from a verified source and returns the
// verdict: Blocked, Banned, Limited or Allowed. It does not allocate.
func (g *Guard) Check(src netip.Addr, now time.Time) Verdict {
	if g == nil {
		return Allowed
	}
	src = src.Unmap()
	v := Blocked
	if !g.block.Load().Contains(src) {
		v = g.lim.Allow(src, now)
	}
	if v != Allowed && g.sink != nil {
		g.sink.Dropped(src, v, now)
	}
	return v
}

// AllowConnect charges a UDP connect from src to src's connect bucket
// and reports whether to answer it. The source has proven nothing, so
// this is only a ceiling on what one address can be sent: a connect over
// the rate is to be dropped, but counts toward no ban, reaches no Sink,
// and leaves src's announce bucket alone, so that forged connects cannot
// get their supposed source banned or reported. It does not allocate.
func (g *Guard) AllowConnect(src netip.Addr, now time.Time) bool {
	if g == nil {
		return true
	}
	return g.conn.Allow(src.Unmap(), now) == Allowed
}

// ReportDrops makes the guard tell sink of every request it turns away.
// Call it before serving.
func (g *Guard) ReportDrops(sink Sink) { g.sink = sink }

// Limiter returns the guard's limiter, for bans and statistics.
func (g *Guard) Limiter() *Limiter { return g.lim }

// Blocklist returns the blocklist in force, possibly nil.
func (g *Guard) Blocklist() *Blocklist { return g.block.Load() }

// Run reloads the blocklist file when it changes, until ctx is done. A bad
// file keeps the previous list and is logged as a warning.
func (g *Guard) Run(ctx context.Context) error {
	if g.file == "" {
		<-ctx.Done()
		return nil
	}
	return WatchFile(ctx, g.file, 2*time.Second, func(bl *Blocklist, err error) {
		if err != nil {
			g.log.Warn("blocklist not reloaded; keeping the previous one", "file", g.file, "err", err)
			return
		}
		g.block.Store(bl)
		g.log.Info("blocklist loaded", "file", g.file, "prefixes", bl.Len())
	})
}
