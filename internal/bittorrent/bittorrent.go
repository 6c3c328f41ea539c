// Package bittorrent holds the protocol value types shared by every part of
// warden: info hashes, peers, events, and the announce and scrape requests and
// responses that flow from a frontend through the tracker to the swarm store.
// It knows nothing of sockets, HTTP or storage and imports only the standard
// library.
package bittorrent

import (
	"fmt"
	"net/netip"
	"time"
)

// PeerID is the 20-byte identifier a client chooses for itself. It is not
// authenticated and is never used to find or remove a peer.
type PeerID [20]byte

// Event is the event key of an announce.
type Event uint8

// The announce events of BEP 3, numbered as in BEP 15.
const (
	EventNone Event = iota
	EventCompleted
	EventStarted
	EventStopped
)

func (e Event) String() string {
	switch e {
	case EventNone:
		return "none"
	case EventCompleted:
		return "completed"
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// CompactPeers is a list of peer contact addresses of one family, in the
// wire form both frontends send: 6 bytes each (IPv4 address, big-endian
// port; BEP 23) or 18 bytes each (IPv6; BEP 7). The store appends to it
// and the frontends copy it out as it is, so handing out peers converts
// nothing. Peer IDs are not kept: compact replies do not carry them.
type CompactPeers struct {
	Bytes []byte
	V6    bool
}

// Compact entry sizes.
const (
	CompactLen4 = 6
	CompactLen6 = 18
)

// Reset empties the list, keeping its storage, for peers of the given family.
func (p *CompactPeers) Reset(v6 bool) {
	p.Bytes = p.Bytes[:0]
	p.V6 = v6
}

// EntryLen is the size of one entry: 6 or 18 bytes.
func (p *CompactPeers) EntryLen() int {
	if p.V6 {
		return CompactLen6
	}
	return CompactLen4
}

// Len is the number of peers.
func (p *CompactPeers) Len() int { return len(p.Bytes) / p.EntryLen() }

// At decodes the i-th peer.
func (p *CompactPeers) At(i int) netip.AddrPort {
	n := p.EntryLen()
	e := p.Bytes[i*n : (i+1)*n]
	port := uint16(e[n-2])<<8 | uint16(e[n-1])
	if p.V6 {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(e[:16])), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(e[:4])), port)
}

// Append adds ap if it is of the list's family (an IPv4-mapped address
// counts as IPv4) and reports whether it did.
func (p *CompactPeers) Append(ap netip.AddrPort) bool {
	ip := ap.Addr().Unmap()
	switch {
	case ip.Is4() && !p.V6:
		b := ip.As4()
		p.Bytes = append(p.Bytes, b[:]...)
	case ip.Is6() && p.V6:
		b := ip.As16()
		p.Bytes = append(p.Bytes, b[:]...)
	default:
		return false
	}
	p.Bytes = append(p.Bytes, byte(ap.Port()>>8), byte(ap.Port()))
	return true
}

// All returns the peers in order, decoded.
func (p *CompactPeers) All() []netip.AddrPort {
	out := make([]netip.AddrPort, p.Len())
	for i := range out {
		out[i] = p.At(i)
	}
	return out
}

// AnnounceRequest is a parsed announce from either frontend.
type AnnounceRequest struct {
	InfoHash InfoHash
	PeerID   PeerID
	// Addr is the peer's contact address: the request's source IP (or the
	// trusted proxy's forwarded IP) with the port the peer announced.
	Addr       netip.AddrPort
	Uploaded   uint64
	Downloaded uint64
	Left       uint64
	Event      Event
	// NumWant is the number of peers asked for; negative means "default".
	NumWant int32
	Key     uint32
}

// Seeder reports whether the announcing peer has the whole torrent.
func (r *AnnounceRequest) Seeder() bool { return r.Left == 0 }

// AnnounceResponse is the tracker's answer. Peers is reused between calls
// by the frontends, so filling it does not allocate once it has grown.
type AnnounceResponse struct {
	Interval    time.Duration
	MinInterval time.Duration
	Complete    uint32 // seeders
	Incomplete  uint32 // leechers
	// Peers are of the requester's address family only.
	Peers CompactPeers
}

// Scrape is the swarm summary for one torrent.
type Scrape struct {
	InfoHash   InfoHash
	Complete   uint32 // seeders
	Incomplete uint32 // leechers
	Downloaded uint32 // completed events seen
}

// ClientError is an error whose text is meant for the client: it is sent as
// an HTTP failure reason or a UDP error message. Any other error reaches the
// client only as "internal error".
type ClientError string

func (e ClientError) Error() string { return string(e) }

// Refusal is the answer for a torrent the tracker will not track: a reason
// for the client, and how long to stay away. Frontends send it as a failure
// with Interval as both interval and min interval and BEP 31's "retry in:
// never" over HTTP, and as an error action over UDP. A fast, well-formed
// refusal with a long interval is what calms real clients; silence, errors
// and dropped connections make them retry sooner.
type Refusal struct {
	Reason   string
	Interval time.Duration
}

func (r *Refusal) Error() string { return r.Reason }
