package limit

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/bpf"

	"warden/internal/sockfilter"
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

	refusalCost int // Config.RefusalCost

	filterMu sync.Mutex
	filtered []filteredConn
	held     []netip.Prefix // the prefixes in the filters now
	onFilter func(held []netip.Prefix)
	exempt   []netip.Prefix // never in a filter: trusted proxies
	every    time.Duration  // filterEvery, but for tests
	inFilter atomic.Int64   // len(held)
	leftOut  atomic.Int64   // bans and blocklist prefixes that did not fit
}

// filteredConn is a socket whose filter the guard keeps.
type filteredConn struct {
	rc   syscall.RawConn
	kind sockfilter.Kind
}

// filterEvery is how often Run brings the sockets' filters up to date, so
// that an ended ban (or a change of blocklist) leaves the kernel within
// this; a new or lifted one reaches it at once, or filterGap after the
// last copy.
const (
	filterEvery = 250 * time.Millisecond
	filterGap   = 50 * time.Millisecond
)

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
	g := &Guard{lim: lim, conn: conn, file: cfg.BlocklistFile, log: log.With("component", "guard"), refusalCost: cfg.RefusalCost, every: filterEvery}
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

// ChargeRefusal charges src, a verified source whose request the tracker
// has just refused, what the refusal costs beyond the one request Check
// charged (Config.RefusalCost). It does not allocate.
func (g *Guard) ChargeRefusal(src netip.Addr, now time.Time) {
	if g == nil || g.refusalCost <= 1 {
		return
	}
	g.lim.Charge(src.Unmap(), g.refusalCost-1, now)
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

// Stats returns the limiter's counters and the size of the kernel filters.
func (g *Guard) Stats() Stats {
	s := g.lim.Stats()
	s.KernelFilterPrefixes = int(g.inFilter.Load())
	s.KernelFilterLeftOut = int(g.leftOut.Load())
	return s
}

// Filter makes the guard keep a kernel filter on the socket c that drops
// what comes from running bans and blocklisted prefixes (see sockfilter):
// for a UDP socket every datagram (sockfilter.Datagrams), for a listening
// TCP socket the connection attempts (sockfilter.SYNs), so that a banned
// source costs neither a handshake nor a place in the accept queue. The
// most active bans go first; what does not fit is still turned away by
// the frontend. Run keeps the filters up to date. It returns an error,
// and filters nothing, where the socket takes no filter (not Linux, or
// multipath TCP).
func (g *Guard) Filter(c syscall.Conn, kind sockfilter.Kind) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	g.filterMu.Lock()
	defer g.filterMu.Unlock()
	if err := sockfilter.Attach(rc, sockfilter.Program(kind, g.held)); err != nil {
		return err
	}
	g.filtered = append(g.filtered, filteredConn{rc, kind})
	return nil
}

// ExemptFromFilters keeps every prefix overlapping one of ps out of the
// kernel filters: a trusted proxy speaks for many clients, whose bans
// apply to them request by request, never to the proxy's connections.
// Call it before Run.
func (g *Guard) ExemptFromFilters(ps []netip.Prefix) {
	g.filterMu.Lock()
	defer g.filterMu.Unlock()
	g.exempt = append(g.exempt, ps...)
}

// OnFilter makes the guard call f with the prefixes in the kernel filters
// each time they change, before the filters do, so that a sensor counting
// what the kernel drops for them never misses a packet (package sensor).
// f must not block, nor keep or change the slice. Call it before Run.
func (g *Guard) OnFilter(f func(held []netip.Prefix)) { g.onFilter = f }

// refreshFilters brings the kernel filters up to date with the bans and
// the blocklist at now, and forgets sockets that were closed.
func (g *Guard) refreshFilters(now time.Time) {
	g.filterMu.Lock()
	defer g.filterMu.Unlock()
	if len(g.filtered) == 0 {
		return
	}
	// Candidates: the busiest bans, then the blocklist, each cut to twice
	// what a filter holds (some may lie inside others), so that a table
	// full of bans costs a scan, not a copy and a sort of all of them.
	const window = 2 * sockfilter.MaxPrefixes
	bans, running := g.lim.BusiestBans(now, window)
	bl := g.block.Load()
	block := bl.First(window)
	ps := slices.DeleteFunc(append(bans, block...), func(p netip.Prefix) bool {
		return slices.ContainsFunc(g.exempt, p.Overlaps)
	})
	held, leftOut := sockfilter.Choose(ps)
	g.inFilter.Store(int64(len(held)))
	// Those beyond the window count as left out, even if inside one held.
	g.leftOut.Store(int64(leftOut + running - len(bans) + bl.Len() - len(block)))
	if slices.Equal(held, g.held) {
		return
	}
	g.held = held
	if g.onFilter != nil {
		g.onFilter(held)
	}
	var progs [2][]bpf.RawInstruction // by kind, built when first needed
	kept := g.filtered[:0]
	for _, f := range g.filtered {
		if progs[f.kind] == nil {
			progs[f.kind] = sockfilter.Program(f.kind, held)
		}
		if err := sockfilter.Attach(f.rc, progs[f.kind]); err != nil {
			continue // closed: forget it
		}
		kept = append(kept, f)
	}
	clear(g.filtered[len(kept):])
	g.filtered = kept
}

// Run keeps the kernel filters up to date (see Filter) and reloads the
// blocklist file when it changes, until ctx is done. A bad file keeps the
// previous list and is logged as a warning.
func (g *Guard) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		t := time.NewTicker(g.every)
		defer t.Stop()
		var last time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-g.lim.BansChanged():
				// A flood can impose bans by the thousand: copy them at
				// most every filterGap, not once each.
				if wait := filterGap - time.Since(last); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
			}
			last = time.Now()
			g.refreshFilters(last)
		}
	})
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
