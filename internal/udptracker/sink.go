package udptracker

import (
	"net/netip"
	"time"

	"warden/internal/bittorrent"
)

// Sink is told of every datagram the workers read, for the operator's
// record of who knocks: cmd/warden connects it to package evidence, which
// this package does not import. It is called by the workers, once per
// datagram, so it must not block and should not allocate; ev.Hashes is
// valid only during the call.
type Sink interface {
	Datagram(ev Event)
}

// EventKind is what a datagram was.
type EventKind uint8

const (
	// EventConnect is a connect (action 0 with the protocol magic).
	EventConnect EventKind = iota
	// EventAnnounce and EventScrape carry a valid connection ID, unless
	// their source was blocklisted before it was checked.
	EventAnnounce
	EventScrape
	// EventGarbage is a datagram that is no request: too short or long,
	// a bad magic or action, or a malformed announce or scrape.
	EventGarbage
	// EventForgedCookie is an announce or scrape whose connection ID was
	// not issued to its source in the last two minutes.
	EventForgedCookie
)

// Outcome is what the tracker did with a datagram.
type Outcome uint8

const (
	// Answered: replied to, or dropped as garbage or a forged ID.
	Answered Outcome = iota
	// Refused: the torrent is not tracked (a refusal, calm or not, or
	// shed while the worker was behind).
	Refused
	// Limited: over the source's rate (or its connect rate).
	Limited
	// Banned: the guard banned the source or its prefix.
	Banned
	// Blocked: the source is on the blocklist.
	Blocked
)

// Event is one datagram as the codec saw it.
type Event struct {
	Src netip.Addr // unmapped, without zone
	Now time.Time
	// Verified is true when the datagram carried a valid connection ID,
	// which proves its source receives at its address.
	Verified bool
	Kind     EventKind
	Outcome  Outcome
	// What a parsed announce or scrape asked for: the info hash (or
	// hashes), and an announce's peer ID and port.
	Hashes    []bittorrent.InfoHash
	PeerID    bittorrent.PeerID
	HasPeerID bool
	Port      uint16
}

// ReportKnocks makes every worker tell sink of each datagram. Call it
// before Run; nil stops the reports.
func (s *Server) ReportKnocks(sink Sink) {
	for _, w := range s.workers {
		w.codec.sink = sink
	}
}

// report tells the sink of a datagram from ip that was not parsed as a
// request (see reportParsed).
func (c *codec) report(ip netip.Addr, kind EventKind, verified bool, outcome Outcome, now time.Time) {
	if c.sink == nil {
		return
	}
	c.sink.Datagram(Event{Src: ip, Now: now, Verified: verified, Kind: kind, Outcome: outcome})
}

// reportParsed tells the sink of an announce or scrape that was parsed:
// its hashes, and an announce's peer ID and port.
func (c *codec) reportParsed(ip netip.Addr, kind EventKind, outcome Outcome, hashes []bittorrent.InfoHash, req *bittorrent.AnnounceRequest, now time.Time) {
	if c.sink == nil {
		return
	}
	ev := Event{Src: ip, Now: now, Verified: true, Kind: kind, Outcome: outcome, Hashes: hashes}
	if req != nil {
		ev.PeerID, ev.HasPeerID, ev.Port = req.PeerID, true, req.Addr.Port()
	}
	c.sink.Datagram(ev)
}
