package loadgen

import (
	"encoding/binary"

	"warden/internal/bittorrent"
)

// The client side of BEP 15, as pure functions over byte slices.

const (
	udpProtocolID = 0x41727101980

	actionConnect  = 0
	actionAnnounce = 1
	actionScrape   = 2
	actionError    = 3

	connectLen      = 16
	announceLen     = 98
	announceHdrLen  = 20
	scrapeHdrLen    = 16 // request: connection ID, action, transaction ID
	scrapeReplyHdr  = 8
	scrapeReplyItem = 12
)

// appendConnect appends a connect request.
func appendConnect(b []byte, txid uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, udpProtocolID)
	b = binary.BigEndian.AppendUint32(b, actionConnect)
	return binary.BigEndian.AppendUint32(b, txid)
}

// udpAnnounce is the content of an announce request.
type udpAnnounce struct {
	infoHash   bittorrent.InfoHash
	peerID     bittorrent.PeerID
	downloaded uint64
	left       uint64
	uploaded   uint64
	event      bittorrent.Event
	key        uint32
	numWant    int32
	port       uint16
}

// appendAnnounce appends an announce request (98 bytes). The IP field is 0:
// the tracker uses the source address.
func appendAnnounce(b []byte, connID uint64, txid uint32, a *udpAnnounce) []byte {
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, actionAnnounce)
	b = binary.BigEndian.AppendUint32(b, txid)
	b = append(b, a.infoHash[:]...)
	b = append(b, a.peerID[:]...)
	b = binary.BigEndian.AppendUint64(b, a.downloaded)
	b = binary.BigEndian.AppendUint64(b, a.left)
	b = binary.BigEndian.AppendUint64(b, a.uploaded)
	b = binary.BigEndian.AppendUint32(b, uint32(a.event))
	b = binary.BigEndian.AppendUint32(b, 0) // IP address: default
	b = binary.BigEndian.AppendUint32(b, a.key)
	b = binary.BigEndian.AppendUint32(b, uint32(a.numWant))
	return binary.BigEndian.AppendUint16(b, a.port)
}

// appendScrapeHeader appends a scrape request's header; the info hashes
// follow it, 20 bytes each.
func appendScrapeHeader(b []byte, connID uint64, txid uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, actionScrape)
	return binary.BigEndian.AppendUint32(b, txid)
}

// replyHeader returns a reply's action and transaction ID; ok is false if
// it is too short to have them.
func replyHeader(b []byte) (action, txid uint32, ok bool) {
	if len(b) < 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), true
}

// checkConnect checks a connect reply whose header matched and returns the
// connection ID.
func checkConnect(b []byte) (connID uint64, bad badReason, ok bool) {
	if action := binary.BigEndian.Uint32(b); action != actionConnect {
		return 0, badAction, false
	}
	if len(b) != connectLen {
		return 0, badLength, false
	}
	return binary.BigEndian.Uint64(b[8:]), 0, true
}

// checkAnnounce checks an announce reply whose header matched: the action,
// a length of 20 plus a whole number of peers of the family (6 bytes for
// IPv4, 18 for IPv6), a positive interval, and no more peers than numWant
// when numWant is not -1.
func checkAnnounce(b []byte, ipv6 bool, numWant int32) (bad badReason, ok bool) {
	if action := binary.BigEndian.Uint32(b); action != actionAnnounce {
		return badAction, false
	}
	if len(b) < announceHdrLen {
		return badShort, false
	}
	peerLen := 6
	if ipv6 {
		peerLen = 18
	}
	n := len(b) - announceHdrLen
	if n%peerLen != 0 {
		return badLength, false
	}
	if interval := int32(binary.BigEndian.Uint32(b[8:])); interval <= 0 {
		return badInterval, false
	}
	if numWant >= 0 && n/peerLen > int(numWant) {
		return badPeers, false
	}
	return 0, true
}

// checkScrape checks a scrape reply whose header matched: the action and
// exactly 12 bytes per info hash asked for.
func checkScrape(b []byte, hashes int) (bad badReason, ok bool) {
	if action := binary.BigEndian.Uint32(b); action != actionScrape {
		return badAction, false
	}
	if len(b) != scrapeReplyHdr+scrapeReplyItem*hashes {
		return badLength, false
	}
	return 0, true
}

// errorMessage returns the message of an error reply, without the NUL
// some trackers append.
func errorMessage(b []byte) []byte {
	m := b[8:]
	for len(m) > 0 && m[len(m)-1] == 0 {
		m = m[:len(m)-1]
	}
	return m
}
