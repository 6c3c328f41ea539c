package httptracker

import (
	"net"
	"net/netip"
	"sync"

	"warden/internal/limit"
)

// limitListener bounds open connections, overall and per source IP, and
// closes a blocklisted source's connections as soon as they are accepted,
// so idle or slow connections from one place cannot use up the file
// descriptors everyone shares. The per-source map holds at most max
// entries, one per source with an open connection.
type limitListener struct {
	net.Listener
	guard          *limit.Guard
	max, maxPerSrc int
	refused        *counter

	mu    sync.Mutex // guards the fields below
	open  int
	bySrc map[netip.Addr]int
}

func newLimitListener(ln net.Listener, guard *limit.Guard, max, maxPerSrc int, stats *counters) *limitListener {
	return &limitListener{Listener: ln, guard: guard, max: max, maxPerSrc: maxPerSrc, refused: &stats.connsRefused, bySrc: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the limits, closing the
// others unread.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteIP(c)
		if l.guard.Blocked(src) || !l.acquire(src) {
			l.refused.n.Add(1)
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l, src: src}, nil
	}
}

func (l *limitListener) acquire(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max || l.bySrc[src] >= l.maxPerSrc {
		return false
	}
	l.open++
	l.bySrc[src]++
	return true
}

func (l *limitListener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.bySrc[src] - 1; n > 0 {
		l.bySrc[src] = n
	} else {
		delete(l.bySrc, src)
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	l    *limitListener
	src  netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
