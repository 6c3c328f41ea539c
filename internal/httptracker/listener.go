package httptracker

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/limit"
)

// connLimits are the caps a limitListener enforces (see Config).
type connLimits struct {
	max, perSource, perPrefix, perProxy int
}

// limitListener shares the connection slots, which stand for file
// descriptors and about 20 KiB of memory each, so that idle or slow
// connections from one place cannot keep everyone else out:
//
//   - a blocklisted or banned source is reset as soon as it is accepted
//     (on Linux before it costs a net.Conn: see acceptRaw), as is a
//     source or prefix at its cap below;
//   - a source (an IPv4 address, an IPv6 /64) holds at most perSource,
//     and a prefix (an IPv4 /24, an IPv6 /48) at most perPrefix, with the
//     limiter's lengths, so that the two agree on what one source is;
//   - a trusted proxy, which speaks for many clients, holds at most
//     perProxy, apart from those caps;
//   - once max are open, a newcomer is let in by closing the connection
//     idle longest in the prefix that holds the most, provided that prefix
//     holds at least two more than the newcomer's. So a flood that fills
//     every slot from a few hundred addresses gives way, one connection at
//     a time, to any prefix holding fewer, and never to itself.
//
// A connection may be closed for another while it is idle between
// requests, before its first request has begun, or when its request has
// been under way for longer than activeGrace (a header trickled in, a
// reply nobody reads): a handler never takes that long.
//
// The bookkeeping is a few maps, one list per prefix in order of last
// use, and the prefixes bucketed by how many connections they hold, so
// that admitting, closing and each state change cost O(1) under one
// mutex, and finding a victim looks at no more than victimScan prefixes.
type limitListener struct {
	net.Listener
	guard   *limit.Guard
	keys    func(netip.Addr) (source, prefix netip.Prefix)
	trusted []netip.Prefix
	lim     connLimits
	stats   *counters
	now     func() time.Time
	epoch   time.Time // since is measured from here, on the monotonic clock
	sink    Sink      // told of refused connections; nil for none
	// raw is a duplicate of the listening socket, for acceptRaw; nil
	// where there is none (not TCP, not Linux).
	raw    *os.File
	closed atomic.Bool // Close was called

	openNow atomic.Int64 // open, for Stats without the mutex

	mu      sync.Mutex // guards the fields below and every limitConn's list fields
	open    int
	sources map[netip.Prefix]int // open per source and per proxy address
	groups  map[netip.Prefix]*connGroup
	bySize  []*connGroup // bySize[n] lists the prefixes holding n connections
	top     int          // no prefix holds more than top
	proxies connGroup    // trusted proxies' connections, never in bySize
}

// activeGrace is how long a request may be under way before its
// connection can be closed for a newcomer: the handler answers in
// microseconds, so a request still running after this is a header
// trickled in or a reply the client does not read.
const activeGrace = time.Second

// victimScan bounds the prefixes looked at for a connection to close, so
// that admitting one costs little even when most prefixes' connections
// are all busy.
const victimScan = 64

// victimLRU is how many of a prefix's least recently used connections are
// looked at: the first may be a request under way, whose connection was
// used before the others went idle.
const victimLRU = 4

// connGroup is the connections of one prefix (or of all trusted proxies),
// least recently used first.
type connGroup struct {
	key        netip.Prefix
	open       int
	head, tail *limitConn
	prev, next *connGroup // in bySize[open]
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	l      *limitListener
	source netip.Prefix // source key, or the proxy's address
	// Guarded by l.mu:
	g          *connGroup
	prev, next *limitConn // in g, least recently used first
	state      http.ConnState
	since      time.Duration // when the request under way began, from l.epoch
	gone       bool          // the slot is given back
}

func newLimitListener(ln net.Listener, guard *limit.Guard, trusted []netip.Prefix, lim connLimits, stats *counters) *limitListener {
	l := &limitListener{
		Listener: ln,
		raw:      rawListener(ln),
		guard:    guard,
		keys:     limitKeys(guard),
		trusted:  trusted,
		lim:      lim,
		stats:    stats,
		now:      time.Now,
		sources:  make(map[netip.Prefix]int),
		groups:   make(map[netip.Prefix]*connGroup),
		bySize:   make([]*connGroup, min(lim.perPrefix, lim.max)+1),
	}
	l.epoch = l.now()
	return l
}

// limitKeys returns the guard's idea of a source and its prefix, or the
// default one's when there is no guard.
func limitKeys(g *limit.Guard) func(netip.Addr) (netip.Prefix, netip.Prefix) {
	if g != nil {
		return g.Limiter().Keys
	}
	return defaultKeys().Keys
}

// defaultKeys is a small limiter with the default lengths, used for its
// Keys only.
var defaultKeys = sync.OnceValue(func() *limit.Limiter {
	c := limit.DefaultConfig()
	c.TableBytes, c.MaxBans = 1<<16, 8
	return limit.New(c)
})

// Accept returns the next connection within the limits, closing the
// others unread, and closing an idle one to make room when that is fair.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		var c net.Conn
		var err error
		if l.raw != nil {
			c, err = l.acceptRaw()
		} else {
			c, err = l.Listener.Accept()
		}
		if err != nil {
			return nil, err
		}
		if c == nil { // a batch refused at once: let others run
			runtime.Gosched()
			continue
		}
		lc, victim := l.admit(c)
		if victim != nil {
			l.stats.connsEvicted.n.Add(1)
			victim.Conn.Close() // its Close, from net/http, finds it gone
		}
		if lc == nil {
			l.stats.connsRefused.n.Add(1)
			l.reportRefused(c)
			reset(c)
			continue
		}
		return lc, nil
	}
}

// refusedEarly counts and reports a connection from ip that acceptRaw
// refused.
func (l *limitListener) refusedEarly(ip netip.Addr) {
	l.stats.connsRefused.n.Add(1)
	l.reportRefusedIP(ip)
}

// reset closes a refused connection with a TCP reset instead of a FIN:
// one packet instead of a four-way close, and no TIME_WAIT socket left on
// our side for each one a connection flood makes. Nothing was read and
// nothing is owed, so no data can be lost by it.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// Close closes the listener and the duplicate acceptRaw waits on, which
// wakes an Accept under way.
func (l *limitListener) Close() error {
	l.closed.Store(true)
	if l.raw != nil {
		l.raw.Close()
	}
	return l.Listener.Close()
}

// admit decides about a new connection. It returns the connection to
// serve (nil to refuse it) and a connection to close for it, if any.
func (l *limitListener) admit(c net.Conn) (*limitConn, *limitConn) {
	now := l.now()
	k, ok := l.keysOf(remoteIP(c), now)
	if !ok {
		return nil, nil
	}
	since := now.Sub(l.epoch)

	l.mu.Lock()
	defer l.mu.Unlock()
	g, held, ok := l.roomLocked(k)
	if !ok {
		return nil, nil
	}
	source, prefix := k.source, k.prefix
	var victim *limitConn
	if l.open >= l.lim.max {
		if victim = l.victimLocked(held, since); victim == nil {
			return nil, nil
		}
		l.removeLocked(victim)
	}
	if g == nil {
		g = &connGroup{key: prefix}
		l.groups[prefix] = g
	}
	lc := &limitConn{Conn: c, l: l, source: source, g: g, state: http.StateNew, since: since}
	l.open++
	l.openNow.Store(int64(l.open))
	l.sources[source]++
	l.pushLocked(lc)
	if g != &l.proxies {
		l.resizeLocked(g, g.open-1)
	}
	return lc, victim
}

// connKeys are what a connection from one address is counted under.
type connKeys struct {
	source, prefix netip.Prefix // for a trusted proxy: its address, and none
	proxy          bool
}

// keysOf returns the keys of a connection from ip, or false if the guard
// refuses ip outright: blocklisted, or banned (a trusted proxy's address
// is not checked for bans: its requests are charged to its clients, and
// only those with unusable headers to itself).
func (l *limitListener) keysOf(ip netip.Addr, now time.Time) (connKeys, bool) {
	k := connKeys{proxy: inPrefixes(ip, l.trusted)}
	if l.guard.Blocked(ip) || !k.proxy && l.guard.Banned(ip, now) {
		return k, false
	}
	if k.proxy {
		k.source = netip.PrefixFrom(ip, ip.BitLen())
	} else {
		k.source, k.prefix = l.keys(ip)
	}
	return k, true
}

// roomLocked checks the caps of k's source and prefix (or proxy). It
// returns the group a new connection joins (nil for a prefix holding
// none yet) and what that side holds, for fairness; false if a cap is
// reached.
func (l *limitListener) roomLocked(k connKeys) (g *connGroup, held int, ok bool) {
	if k.proxy {
		return &l.proxies, 0, l.sources[k.source] < l.lim.perProxy
	}
	if l.sources[k.source] >= l.lim.perSource {
		return nil, 0, false
	}
	if g = l.groups[k.prefix]; g != nil {
		if g.open >= l.lim.perPrefix {
			return nil, 0, false
		}
		held = g.open
	}
	return g, held, true
}

// refusable reports whether a connection from ip would be refused by the
// guard or a cap, as admit decides, without counting it anywhere: the
// early check of acceptRaw, made before the connection has a net.Conn.
// It does not allocate.
func (l *limitListener) refusable(ip netip.Addr, now time.Time) bool {
	k, ok := l.keysOf(ip, now)
	if !ok {
		return true
	}
	l.mu.Lock()
	_, _, ok = l.roomLocked(k)
	l.mu.Unlock()
	return !ok
}

// victimLocked returns a connection to close for a newcomer whose prefix
// holds held: the least recently used connection that may be closed (of
// the victimLRU least recently used) in the largest prefix holding at
// least held+2, or nil.
func (l *limitListener) victimLocked(held int, now time.Duration) *limitConn {
	scanned := 0
	for n := l.top; n >= held+2; n-- {
		for g := l.bySize[n]; g != nil; g = g.next {
			for c, i := g.head, 0; c != nil && i < victimLRU; c, i = c.next, i+1 {
				if c.evictable(now) {
					return c
				}
			}
			if scanned++; scanned == victimScan {
				return nil
			}
		}
	}
	return nil
}

// evictable reports whether c may be closed to make room at now. The
// caller holds l.mu.
func (c *limitConn) evictable(now time.Duration) bool {
	return c.state != http.StateActive || now-c.since >= activeGrace
}

// pushLocked appends c to its group's list, as its most recently used.
func (l *limitListener) pushLocked(c *limitConn) {
	g := c.g
	c.prev, c.next = g.tail, nil
	if g.tail != nil {
		g.tail.next = c
	} else {
		g.head = c
	}
	g.tail = c
	g.open++
}

// unlinkLocked takes c out of its group's list.
func (l *limitListener) unlinkLocked(c *limitConn) {
	g := c.g
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		g.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		g.tail = c.prev
	}
	c.prev, c.next = nil, nil
	g.open--
}

// resizeLocked moves g, which held was before its last change, to the
// bucket of its size now, and drops it once empty.
func (l *limitListener) resizeLocked(g *connGroup, was int) {
	if was > 0 {
		if g.prev != nil {
			g.prev.next = g.next
		} else {
			l.bySize[was] = g.next
		}
		if g.next != nil {
			g.next.prev = g.prev
		}
		g.prev, g.next = nil, nil
	}
	if n := g.open; n > 0 {
		g.next = l.bySize[n]
		if g.next != nil {
			g.next.prev = g
		}
		l.bySize[n] = g
		l.top = max(l.top, n)
	} else {
		delete(l.groups, g.key)
	}
	for l.top > 0 && l.bySize[l.top] == nil {
		l.top--
	}
}

// removeLocked gives c's slot back.
func (l *limitListener) removeLocked(c *limitConn) {
	c.gone = true
	l.open--
	l.openNow.Store(int64(l.open))
	if n := l.sources[c.source] - 1; n > 0 {
		l.sources[c.source] = n
	} else {
		delete(l.sources, c.source)
	}
	l.unlinkLocked(c)
	if c.g != &l.proxies {
		l.resizeLocked(c.g, c.g.open+1)
	}
}

// track is the http.Server's ConnState hook: it keeps each group's list in
// order of last use and each connection's state, for victimLocked and
// closeFresh. It costs O(1) under the mutex, and a clock reading when a
// request begins (only a request's age matters to evictable).
func (l *limitListener) track(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*limitConn)
	if !ok {
		return
	}
	var since time.Duration
	if st == http.StateActive {
		since = l.now().Sub(l.epoch)
	}
	l.mu.Lock()
	if !c.gone {
		c.state, c.since = st, since
		if c.g.tail != c {
			l.unlinkLocked(c)
			l.pushLocked(c)
		}
	}
	l.mu.Unlock()
}

// closeFresh closes every connection that has not yet sent a whole request
// header. Called once Shutdown has begun (from RegisterOnShutdown), it cuts
// no request that would be answered: net/http would drop such a request
// unanswered when its header completes, yet wait for the connection (up to
// 5 s) before counting it idle, so a port scanner or a slow client could
// hold up every stop. A connection still in StateNew has not yet passed
// net/http's shutting-down check, which comes after its state leaves it.
func (l *limitListener) closeFresh() {
	var fresh []*limitConn
	l.mu.Lock()
	collect := func(g *connGroup) {
		for c := g.head; c != nil; c = c.next {
			if c.state == http.StateNew {
				fresh = append(fresh, c)
			}
		}
	}
	for _, g := range l.groups {
		collect(g)
	}
	collect(&l.proxies)
	l.mu.Unlock()
	for _, c := range fresh {
		c.Close()
	}
}

// held returns the connections open from source key k, for tests.
func (l *limitListener) held(k netip.Prefix) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sources[k]
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Close closes the connection and gives its slot back, unless it was
// already given to another.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	l := c.l
	l.mu.Lock()
	if !c.gone {
		l.removeLocked(c)
	}
	l.mu.Unlock()
	return err
}
