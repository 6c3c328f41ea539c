// Package bep15 is the wire format of the UDP tracker protocol, BEP 15,
// with the BEP 41 options that may follow an announce. It owns the byte
// layout only: the encoders of both sides, the parsers a tracker uses and
// the checks a client makes of a reply. Who gets an answer, and what it
// says, belongs to the users: package udptracker serves the protocol, and
// package loadgen speaks it to measure a tracker.
//
// Every datagram starts with a header; all integers are big-endian:
//
//	request: connection_id(8) action(4) transaction_id(4) body
//	reply:   action(4) transaction_id(4) body
//
// The functions work on slices the caller owns. Encoders append, like
// strconv's Append functions; nothing here allocates, and nothing panics
// on any input.
package bep15

import (
	"encoding/binary"

	"warden/internal/bittorrent"
)

// ProtocolID is the connection_id of a connect request, the magic that
// marks a datagram as BEP 15.
const ProtocolID = 0x41727101980

// Actions. A reply carries its request's action, or ActionError.
const (
	ActionConnect  = 0
	ActionAnnounce = 1
	ActionScrape   = 2
	ActionError    = 3 // reply only: the header, then a message
)

// Sizes of the fixed parts.
const (
	HeaderLen        = 16 // every request: connection_id action transaction_id
	AnnounceLen      = 98 // an announce request; BEP 41 options may follow
	HashLen          = 20 // one info hash of a scrape request
	ReplyHeaderLen   = 8  // every reply: action transaction_id
	ConnectReplyLen  = 16 // the header, then connection_id(8)
	AnnounceReplyLen = 20 // the header, interval leechers seeders, then peers
	ScrapeEntryLen   = 12 // seeders completed leechers, one per hash asked for
)

// BEP 41 option types. Every type but these two carries a length byte.
const (
	OptEndOfOptions = 0x0
	OptNOP          = 0x1
	OptURLData      = 0x2
)

var be = binary.BigEndian

// Header is the start of every request.
type Header struct {
	ConnID uint64 // ProtocolID in a connect, else an ID a connect reply gave
	Action uint32
	TxID   uint32 // chosen by the client and echoed in the reply
}

// ParseHeader returns the header of the request pkt; ok is false if pkt
// is shorter than HeaderLen.
func ParseHeader(pkt []byte) (h Header, ok bool) {
	if len(pkt) < HeaderLen {
		return Header{}, false
	}
	return Header{ConnID: be.Uint64(pkt), Action: be.Uint32(pkt[8:]), TxID: be.Uint32(pkt[12:])}, true
}

// AppendHeader appends h.
func AppendHeader(b []byte, h Header) []byte {
	b = be.AppendUint64(b, h.ConnID)
	b = be.AppendUint32(b, h.Action)
	return be.AppendUint32(b, h.TxID)
}

// Announce is the body of an announce request, after its header.
type Announce struct {
	InfoHash   bittorrent.InfoHash
	PeerID     bittorrent.PeerID
	Downloaded uint64
	Left       uint64
	Uploaded   uint64
	Event      uint32  // 0-3, numbered as bittorrent.Event; a tracker must expect others
	IP         [4]byte // the address the peer claims; zero for the datagram's source
	Key        uint32
	NumWant    int32 // negative: the tracker's default
	Port       uint16
}

// AppendConnect appends a connect request.
func AppendConnect(b []byte, txid uint32) []byte {
	return AppendHeader(b, Header{ConnID: ProtocolID, Action: ActionConnect, TxID: txid})
}

// AppendAnnounce appends an announce request of AnnounceLen bytes, with
// no options.
func AppendAnnounce(b []byte, connID uint64, txid uint32, a *Announce) []byte {
	b = AppendHeader(b, Header{ConnID: connID, Action: ActionAnnounce, TxID: txid})
	b = append(b, a.InfoHash[:]...)
	b = append(b, a.PeerID[:]...)
	b = be.AppendUint64(b, a.Downloaded)
	b = be.AppendUint64(b, a.Left)
	b = be.AppendUint64(b, a.Uploaded)
	b = be.AppendUint32(b, a.Event)
	b = append(b, a.IP[:]...)
	b = be.AppendUint32(b, a.Key)
	b = be.AppendUint32(b, uint32(a.NumWant))
	return be.AppendUint16(b, a.Port)
}

// AppendScrape appends a scrape request for hashes.
func AppendScrape(b []byte, connID uint64, txid uint32, hashes []bittorrent.InfoHash) []byte {
	b = AppendHeader(b, Header{ConnID: connID, Action: ActionScrape, TxID: txid})
	for i := range hashes {
		b = append(b, hashes[i][:]...)
	}
	return b
}

// ParseAnnounce decodes the announce request pkt, header included, into a
// and returns the options that follow it (see ValidOptions). ok is false,
// and a untouched, if pkt is shorter than AnnounceLen. The header is not
// looked at.
func ParseAnnounce(pkt []byte, a *Announce) (options []byte, ok bool) {
	if len(pkt) < AnnounceLen {
		return nil, false
	}
	// Field by field: a composite literal would be built aside and copied.
	a.InfoHash = bittorrent.InfoHash(pkt[16:36])
	a.PeerID = bittorrent.PeerID(pkt[36:56])
	a.Downloaded = be.Uint64(pkt[56:])
	a.Left = be.Uint64(pkt[64:])
	a.Uploaded = be.Uint64(pkt[72:])
	a.Event = be.Uint32(pkt[80:])
	a.IP = [4]byte(pkt[84:88])
	a.Key = be.Uint32(pkt[88:])
	a.NumWant = int32(be.Uint32(pkt[92:]))
	a.Port = be.Uint16(pkt[96:])
	return pkt[AnnounceLen:], true
}

// ParseScrape appends the info hashes of the scrape request pkt, header
// included, to hashes. ok is false, and hashes returned as they were, if
// pkt holds no hash or a part of one.
func ParseScrape(pkt []byte, hashes []bittorrent.InfoHash) (_ []bittorrent.InfoHash, ok bool) {
	if len(pkt) < HeaderLen+HashLen || (len(pkt)-HeaderLen)%HashLen != 0 {
		return hashes, false
	}
	for body := pkt[HeaderLen:]; len(body) > 0; body = body[HashLen:] {
		hashes = append(hashes, bittorrent.InfoHash(body[:HashLen]))
	}
	return hashes, true
}

// ValidOptions reports whether b, the BEP 41 options after an announce,
// is well formed: each option is EndOfOptions (which ends the list), NOP,
// or a type, a length byte and that many bytes. What follows EndOfOptions
// is padding and is not looked at.
func ValidOptions(b []byte) bool {
	for len(b) > 0 {
		switch b[0] {
		case OptEndOfOptions:
			return true
		case OptNOP:
			b = b[1:]
		default: // OptURLData and the types not yet defined
			if len(b) < 2 || len(b) < 2+int(b[1]) {
				return false
			}
			b = b[2+int(b[1]):]
		}
	}
	return true
}
