package limit

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"warden/internal/topk"
)

// Guard is what the frontends consult for each request: the operator's
// static blocklist (reloaded when its file changes) and the Limiter. A nil
// *Guard allows everything, so tests and tools can leave it out.
type Guard struct {
	lim   *Limiter
	block atomic.Pointer[Blocklist]
	file  string
	log   *slog.Logger
	// over samples the sources refused as over their rate or banned, one
	// in overSample, for the operator's "who is flooding" view.
	over *topk.Sketch[netip.Addr]
	seq  atomic.Uint64
}

// overSample is the sampling of refused requests into Guard.over: rare
// enough that a flood costs the sketch nothing, often enough that a source
// sending thousands a second shows up within a second.
const overSample = 64

// NewGuard returns a guard over a new Limiter for cfg, which must be valid.
// If cfg.BlocklistFile is not empty it is read now (an error names the
// line) and watched by Run.
func NewGuard(cfg Config, log *slog.Logger) (*Guard, error) {
	g := &Guard{lim: New(cfg), file: cfg.BlocklistFile, log: log.With("component", "guard"), over: topk.New[netip.Addr](256)}
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
	if g.block.Load().Contains(src) {
		return Blocked
	}
	v := g.lim.Allow(src, now)
	if v != Allowed && g.seq.Add(1)%overSample == 0 {
		g.over.Observe(src, now)
	}
	return v
}

// TopOffenders returns the sources most often refused as over their rate
// or banned, from a 1-in-64 sample: multiply counts by 64 for an estimate.
func (g *Guard) TopOffenders(n int) []topk.Entry[netip.Addr] { return g.over.Top(n) }

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
