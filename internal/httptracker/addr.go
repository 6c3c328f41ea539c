package httptracker

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
)

// errRemoteAddr means net/http gave a RemoteAddr that is not ip:port, which
// only happens on a listener that is not TCP: our fault, not the client's.
var errRemoteAddr = errors.New("httptracker: RemoteAddr is not ip:port")

// sourceAddr returns the IP address of the peer that sent r, unmapped and
// without zone. It is r.RemoteAddr, the TCP connection's source, unless
// that source is inside one of the trusted proxy prefixes and header names
// the header the proxies set: then that header, and no other, says who
// the proxy was talking to. Never falling back to another header matters:
// a proxy that sets X-Real-IP passes the client's own X-Forwarded-For
// through, and the reverse.
//
// With X-Forwarded-For, each proxy appends the address it received the
// request from, so only the right end of the list is written by proxies
// we trust; anything to the left may have been sent by the client. The list
// (all X-Forwarded-For lines, in order, as one comma-separated list) is
// walked from the right, skipping addresses inside trusted prefixes; the
// first other address is the peer. If every entry is trusted, the leftmost
// is the peer. With X-Real-IP (canonically X-Real-Ip), the header is one
// address.
//
// A header that is missing, repeated (X-Real-IP) or holds something other
// than an IP address (an optional port, as some proxies add, is allowed)
// where the walk stops is a *ParseError: the proxy chain is misconfigured,
// and guessing would attribute the announce to the wrong peer. The
// proxy's own address is returned with it, so that the request can be
// charged to someone. Entries left of the one chosen are never parsed, so
// garbage a client puts there cannot fail its request. sourceAddr does not
// allocate unless it returns a *ParseError.
func sourceAddr(r *http.Request, trusted []netip.Prefix, header string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, errRemoteAddr
	}
	src := ap.Addr().Unmap().WithZone("")
	if header == "" || !inPrefixes(src, trusted) {
		return src, nil
	}
	lines := r.Header[header] // header is canonical
	if header == headerXFF {
		a, ok, err := fromForwardedFor(lines, trusted)
		switch {
		case err != nil:
			return src, err
		case !ok:
			return src, &ParseError{Op: "announce", Field: "x-forwarded-for", Msg: msgMissing}
		}
		return a, nil
	}
	switch len(lines) {
	case 0:
		return src, &ParseError{Op: "announce", Field: "x-real-ip", Msg: msgMissing}
	case 1:
	default:
		return src, &ParseError{Op: "announce", Field: "x-real-ip", Msg: msgRepeated}
	}
	a, ok := parseHop(lines[0])
	if !ok {
		return src, &ParseError{Op: "announce", Field: "x-real-ip", Msg: "invalid address"}
	}
	return a, nil
}

// fromForwardedFor walks the X-Forwarded-For lines from the right. ok is
// false if there is no entry at all.
func fromForwardedFor(lines []string, trusted []netip.Prefix) (a netip.Addr, ok bool, err error) {
	var leftmost netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				hop, line = line[j+1:], line[:j]
			} else {
				hop, line = line, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue // "a, , b" or a trailing comma
			}
			a, valid := parseHop(hop)
			if !valid {
				return netip.Addr{}, true, &ParseError{Op: "announce", Field: "x-forwarded-for", Msg: "invalid address"}
			}
			if !inPrefixes(a, trusted) {
				return a, true, nil
			}
			leftmost, ok = a, true
		}
	}
	return leftmost, ok, nil
}

// parseHop parses one forwarded address: an IP, or ip:port / [ipv6]:port.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
