package limit

import (
	"net/netip"
	"time"
)

// Keys returns the two keys a request from src is charged to, as
// prefixes: its address (an IPv4 /32, an IPv6 /IPv6AddressLen) and its
// prefix (/IPv4PrefixLen, /IPv6PrefixLen), unmapped and without zone. A
// frontend that counts something else per source (open connections) uses
// them so that its idea of one source agrees with the limiter's. It does
// not allocate.
func (l *Limiter) Keys(src netip.Addr) (addr, prefix netip.Prefix) {
	src = src.Unmap()
	if !src.IsValid() {
		src = netip.IPv6Unspecified()
	}
	if src.Is4() {
		return l.lv[v4Addr].prefix(src), l.lv[v4Prefix].prefix(src)
	}
	return l.lv[v6Addr].prefix(src), l.lv[v6Prefix].prefix(src)
}

// Banned reports whether src's address or prefix has a ban running at
// now, that is whether Allow would answer Banned. It only reads: no token
// is taken and nothing is counted, so a frontend may ask it for each new
// connection, before any request. It takes no lock, does not allocate, and
// costs two hashes and two lock-free reads of the ban table.
func (l *Limiter) Banned(src netip.Addr, now time.Time) bool {
	if l.bans.records.Load() == 0 {
		return false
	}
	var k keyPair
	l.keys(&k, src)
	t := l.ns(now)
	if _, _, ok := l.bans.lookup(k.ha, t); ok {
		return true
	}
	_, _, ok := l.bans.lookup(k.hp, t)
	return ok
}

// Banned reports whether src or its prefix is banned at now, as
// Limiter.Banned; a nil Guard bans nothing.
func (g *Guard) Banned(src netip.Addr, now time.Time) bool {
	return g != nil && g.lim.Banned(src, now)
}
