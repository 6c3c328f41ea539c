package bep15

import (
	"warden/internal/bittorrent"
)

// AnnounceReply is the fixed part of an announce reply; the peers follow
// it, in the compact form (bittorrent.CompactPeers) of the requester's
// address family.
type AnnounceReply struct {
	Interval uint32 // seconds until the next announce
	Leechers uint32
	Seeders  uint32
}

// AppendConnectReply appends the reply to a connect.
func AppendConnectReply(b []byte, txid uint32, connID uint64) []byte {
	b = appendReplyHeader(b, ActionConnect, txid)
	return be.AppendUint64(b, connID)
}

// AppendAnnounceReply appends an announce reply carrying peers, which
// must be compact entries of one family.
func AppendAnnounceReply(b []byte, txid uint32, r AnnounceReply, peers []byte) []byte {
	b = appendReplyHeader(b, ActionAnnounce, txid)
	b = be.AppendUint32(b, r.Interval)
	b = be.AppendUint32(b, r.Leechers)
	b = be.AppendUint32(b, r.Seeders)
	return append(b, peers...)
}

// AppendScrapeReply appends a scrape reply with one entry per scrape, in
// order.
func AppendScrapeReply(b []byte, txid uint32, scrapes []bittorrent.Scrape) []byte {
	b = appendReplyHeader(b, ActionScrape, txid)
	for i := range scrapes {
		s := &scrapes[i]
		b = be.AppendUint32(b, s.Complete)
		b = be.AppendUint32(b, s.Downloaded)
		b = be.AppendUint32(b, s.Incomplete)
	}
	return b
}

// AppendError appends an error reply carrying msg, whole: bounding its
// length is the caller's policy.
func AppendError(b []byte, txid uint32, msg string) []byte {
	return append(appendReplyHeader(b, ActionError, txid), msg...)
}

func appendReplyHeader(b []byte, action, txid uint32) []byte {
	b = be.AppendUint32(b, action)
	return be.AppendUint32(b, txid)
}

// ParseReplyHeader returns a reply's action and transaction ID; ok is
// false if it is too short to have them.
func ParseReplyHeader(b []byte) (action, txid uint32, ok bool) {
	if len(b) < ReplyHeaderLen {
		return 0, 0, false
	}
	return be.Uint32(b), be.Uint32(b[4:]), true
}

// A Fault is what makes a reply malformed.
type Fault uint8

const (
	NoFault       Fault = iota
	FaultShort          // shorter than the fixed part of its action
	FaultAction         // an action other than the request's
	FaultLength         // a length the request and the address family rule out
	FaultInterval       // an announce interval that is not positive
	FaultPeers          // more peers than the announce asked for
)

var faultNames = [...]string{"no fault", "short", "wrong action", "wrong length", "bad interval", "too many peers"}

func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "fault?"
}

// CheckConnect checks a connect reply and returns its connection ID. An
// error reply is FaultAction: look at the action first to tell it apart.
func CheckConnect(b []byte) (connID uint64, f Fault) {
	switch {
	case len(b) < ReplyHeaderLen:
		return 0, FaultShort
	case be.Uint32(b) != ActionConnect:
		return 0, FaultAction
	case len(b) != ConnectReplyLen:
		return 0, FaultLength
	}
	return be.Uint64(b[8:]), NoFault
}

// CheckAnnounce checks an announce reply to a request for numWant peers
// (negative: any number) from an IPv6 address if v6, else IPv4, and
// returns its fixed part. A well formed reply has a positive interval,
// then a whole number of peers of the family, at most numWant of them.
// The peers are b[AnnounceReplyLen:].
func CheckAnnounce(b []byte, v6 bool, numWant int32) (r AnnounceReply, f Fault) {
	switch {
	case len(b) < ReplyHeaderLen:
		return r, FaultShort
	case be.Uint32(b) != ActionAnnounce:
		return r, FaultAction
	case len(b) < AnnounceReplyLen:
		return r, FaultShort
	}
	peerLen := bittorrent.CompactLen4
	if v6 {
		peerLen = bittorrent.CompactLen6
	}
	n := len(b) - AnnounceReplyLen
	if n%peerLen != 0 {
		return r, FaultLength
	}
	r = AnnounceReply{Interval: be.Uint32(b[8:]), Leechers: be.Uint32(b[12:]), Seeders: be.Uint32(b[16:])}
	if int32(r.Interval) <= 0 {
		return r, FaultInterval
	}
	if numWant >= 0 && n/peerLen > int(numWant) {
		return r, FaultPeers
	}
	return r, NoFault
}

// CheckScrape checks a scrape reply to a request for hashes info hashes:
// one entry each.
func CheckScrape(b []byte, hashes int) Fault {
	switch {
	case len(b) < ReplyHeaderLen:
		return FaultShort
	case be.Uint32(b) != ActionScrape:
		return FaultAction
	case len(b) != ReplyHeaderLen+ScrapeEntryLen*hashes:
		return FaultLength
	}
	return NoFault
}

// ErrorMessage returns the message of an error reply, without the NULs
// some trackers end it with, or nil if b is shorter than a header.
func ErrorMessage(b []byte) []byte {
	if len(b) < ReplyHeaderLen {
		return nil
	}
	m := b[ReplyHeaderLen:]
	for len(m) > 0 && m[len(m)-1] == 0 {
		m = m[:len(m)-1]
	}
	return m
}
