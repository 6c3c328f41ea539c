package httptracker

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"warden/internal/bittorrent"
)

// Sink is told of every request the handler answers and of every
// connection the listener refuses at accept, for the operator's record of
// who knocks: cmd/warden connects it to package evidence, which this
// package does not import. It is called on the request path, so it must
// not block and should not allocate; ev.Hashes is valid only during the
// call. Every source it is told of completed a TCP handshake.
type Sink interface {
	Request(ev Event)
}

// EventKind is what a request was.
type EventKind uint8

const (
	// EventAnnounce and EventScrape are requests for /announce and
	// /scrape, whether or not their query parsed.
	EventAnnounce EventKind = iota
	EventScrape
	// EventMalformed is an announce or scrape whose query did not parse.
	EventMalformed
	// EventOther is a request for another path, or with another method.
	EventOther
	// EventConnRefused is a connection closed at accept: blocklisted,
	// banned, or over a connection cap.
	EventConnRefused
)

// Outcome is what the tracker did with a request.
type Outcome uint8

const (
	// Answered: replied to normally, or with a failure naming the bad
	// field.
	Answered Outcome = iota
	// Refused: the torrent is not tracked.
	Refused
	// Limited: over the source's rate, or over a connection cap.
	Limited
	// Banned: the guard banned the source or its prefix.
	Banned
	// Blocked: the source is on the blocklist.
	Blocked
)

// Event is one request, or one refused connection.
type Event struct {
	Src     netip.Addr // the client's address (behind a trusted proxy, the forwarded one)
	Now     time.Time
	Kind    EventKind
	Outcome Outcome
	// What a parsed request asked for: its info hashes, and an
	// announce's peer ID and port. UserAgent is the header as sent.
	Hashes    []bittorrent.InfoHash
	PeerID    bittorrent.PeerID
	HasPeerID bool
	Port      uint16
	UserAgent string
}

// ReportKnocks makes the server tell sink of each request and each
// connection refused at accept. Call it before Run; nil stops the
// reports.
func (s *Server) ReportKnocks(sink Sink) {
	s.h.sink = sink
	s.ln.sink = sink
}

// userAgentOf returns a request's User-Agent without canonicalizing the
// key.
func userAgentOf(r *http.Request) string {
	if v := r.Header["User-Agent"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// report tells the sink of a request from src that carried no parsed
// query.
func (h *handler) report(r *http.Request, src netip.Addr, kind EventKind, outcome Outcome, now time.Time) {
	if h.sink == nil || !src.IsValid() {
		return
	}
	h.sink.Request(Event{Src: src, Now: now, Kind: kind, Outcome: outcome, UserAgent: userAgentOf(r)})
}

// reportParsed tells the sink of an announce or scrape whose query parsed.
func (h *handler) reportParsed(r *http.Request, src netip.Addr, kind EventKind, outcome Outcome, hashes []bittorrent.InfoHash, a *announce, now time.Time) {
	if h.sink == nil || !src.IsValid() {
		return
	}
	ev := Event{Src: src, Now: now, Kind: kind, Outcome: outcome, Hashes: hashes, UserAgent: userAgentOf(r)}
	if a != nil {
		ev.PeerID, ev.HasPeerID, ev.Port = a.req.PeerID, true, a.req.Addr.Port()
	}
	h.sink.Request(ev)
}

// reportRefused tells the sink of a connection closed at accept, and why.
func (l *limitListener) reportRefused(c net.Conn) {
	if l.sink == nil {
		return
	}
	l.reportRefusedIP(remoteIP(c))
}

// reportRefusedIP is reportRefused for a connection from ip.
func (l *limitListener) reportRefusedIP(ip netip.Addr) {
	if l.sink == nil || !ip.IsValid() {
		return
	}
	now := l.now()
	out := Limited // a cap
	switch {
	case l.guard.Blocked(ip):
		out = Blocked
	case !inPrefixes(ip, l.trusted) && l.guard.Banned(ip, now):
		out = Banned
	}
	l.sink.Request(Event{Src: ip, Now: now, Kind: EventConnRefused, Outcome: out})
}
