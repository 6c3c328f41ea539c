package httptracker

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"warden/internal/bencode"
	"warden/internal/bittorrent"
)

// The reply builders append one bencoded dictionary to dst and return the
// extended slice. They write keys in increasing byte order, as BEP 3
// requires, and do not allocate once dst has room.

// appendAnnounce appends the reply to an announce:
//
//	complete, incomplete, interval, min interval, peers[, peers6]
//
// The store hands out peers of the requester's family only, already in
// compact form (BEP 23, BEP 7): 6-byte entries in the "peers" string for an
// IPv4 requester, 18-byte entries in "peers6" for an IPv6 one, with an
// empty "peers" beside it (clients expect the key). In the dictionary form
// (compact=0) every peer is a dictionary {ip, port} in the "peers" list.
func appendAnnounce(dst []byte, a *announce, resp *bittorrent.AnnounceResponse) []byte {
	dst = append(dst, 'd')
	dst = bencode.AppendString(dst, "complete")
	dst = bencode.AppendInt(dst, int64(resp.Complete))
	dst = bencode.AppendString(dst, "incomplete")
	dst = bencode.AppendInt(dst, int64(resp.Incomplete))
	dst = bencode.AppendString(dst, "interval")
	dst = bencode.AppendInt(dst, int64(resp.Interval/time.Second))
	dst = bencode.AppendString(dst, "min interval")
	dst = bencode.AppendInt(dst, int64(resp.MinInterval/time.Second))
	dst = bencode.AppendString(dst, "peers")
	peers := &resp.Peers
	if !a.compact {
		dst = append(dst, 'l')
		for i := range peers.Len() {
			dst = appendPeerDict(dst, peers.At(i))
		}
		dst = append(dst, 'e')
		return append(dst, 'e')
	}
	if !peers.V6 {
		dst = bencode.AppendBytes(dst, peers.Bytes)
		return append(dst, 'e')
	}
	dst = bencode.AppendString(dst, "")
	dst = bencode.AppendString(dst, "peers6")
	dst = bencode.AppendBytes(dst, peers.Bytes)
	return append(dst, 'e')
}

// appendPeerDict appends {ip, port}; ip is the textual address. Peer IDs
// are not stored (see bittorrent.CompactPeers), so the dictionary is the
// one BEP 3 allows when a client sends no_peer_id.
func appendPeerDict(dst []byte, ap netip.AddrPort) []byte {
	var ipBuf [64]byte // longest IPv6 text is 45 bytes
	ip := ap.Addr().AppendTo(ipBuf[:0])
	dst = append(dst, 'd')
	dst = bencode.AppendString(dst, "ip")
	dst = bencode.AppendBytes(dst, ip)
	dst = bencode.AppendString(dst, "port")
	dst = bencode.AppendInt(dst, int64(ap.Port()))
	return append(dst, 'e')
}

// appendScrape appends the BEP 48 reply {files: {hash: {complete,
// downloaded, incomplete}}}. Dictionary keys must be unique and sorted, so
// scrapes is sorted by info hash in place and duplicates (the same hash
// asked twice) are written once.
func appendScrape(dst []byte, scrapes []bittorrent.Scrape) []byte {
	slices.SortFunc(scrapes, func(a, b bittorrent.Scrape) int {
		return bytes.Compare(a.InfoHash[:], b.InfoHash[:])
	})
	dst = append(dst, 'd')
	dst = bencode.AppendString(dst, "files")
	dst = append(dst, 'd')
	for i := range scrapes {
		s := &scrapes[i]
		if i > 0 && s.InfoHash == scrapes[i-1].InfoHash {
			continue
		}
		dst = bencode.AppendBytes(dst, s.InfoHash[:])
		dst = append(dst, 'd')
		dst = bencode.AppendString(dst, "complete")
		dst = bencode.AppendInt(dst, int64(s.Complete))
		dst = bencode.AppendString(dst, "downloaded")
		dst = bencode.AppendInt(dst, int64(s.Downloaded))
		dst = bencode.AppendString(dst, "incomplete")
		dst = bencode.AppendInt(dst, int64(s.Incomplete))
		dst = append(dst, 'e')
	}
	return append(dst, 'e', 'e')
}

// appendFailure appends {failure reason: reason}.
func appendFailure(dst, reason []byte) []byte {
	dst = append(dst, 'd')
	dst = bencode.AppendString(dst, "failure reason")
	dst = bencode.AppendBytes(dst, reason)
	return append(dst, 'e')
}

// appendRefusal appends the answer for a torrent the tracker will not
// track: the reason, the refusal's interval as interval and min interval
// (clients treat it as their retry floor), and BEP 31's "retry in: never",
// which no client we measured honours but costs nothing to send.
func appendRefusal(dst []byte, ref *bittorrent.Refusal) []byte {
	secs := int64(ref.Interval / time.Second)
	dst = append(dst, 'd')
	dst = bencode.AppendString(dst, "failure reason")
	dst = bencode.AppendString(dst, ref.Reason)
	dst = bencode.AppendString(dst, "interval")
	dst = bencode.AppendInt(dst, secs)
	dst = bencode.AppendString(dst, "min interval")
	dst = bencode.AppendInt(dst, secs)
	dst = bencode.AppendString(dst, "retry in")
	dst = bencode.AppendString(dst, "never")
	return append(dst, 'e')
}
