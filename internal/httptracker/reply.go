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
// requires, and do not allocate once dst (and scratch) have room.

// appendAnnounce appends the reply to an announce:
//
//	complete, incomplete, interval, min interval, peers[, peers6]
//
// In compact form (BEP 23, BEP 7) IPv4 peers are 6-byte entries of the
// "peers" string and IPv6 peers 18-byte entries of "peers6"; "peers" is
// always present (clients expect it), "peers6" when the requester is on
// IPv6 or an IPv6 peer is listed. In the dictionary form (compact=0) every
// peer is a dictionary {ip, peer id, port} in the "peers" list, "peer id"
// left out if noPeerID. scratch is working space for the compact strings;
// the grown scratch is returned for reuse.
func appendAnnounce(dst, scratch []byte, a *announce, resp *bittorrent.AnnounceResponse) (out, scratchOut []byte) {
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
	if !a.compact {
		dst = append(dst, 'l')
		for i := range resp.Peers {
			dst = appendPeerDict(dst, &resp.Peers[i], a.noPeerID)
		}
		dst = append(dst, 'e')
		return append(dst, 'e'), scratch
	}
	scratch = scratch[:0]
	any6 := false
	for _, p := range resp.Peers {
		ip := p.Addr.Addr()
		if ip.Is4() || ip.Is4In6() {
			scratch = appendCompact4(scratch, p.Addr)
		} else {
			any6 = true
		}
	}
	dst = bencode.AppendBytes(dst, scratch)
	if any6 || a.req.Addr.Addr().Is6() {
		scratch = scratch[:0]
		for _, p := range resp.Peers {
			ip := p.Addr.Addr()
			if !ip.Is4() && !ip.Is4In6() {
				scratch = appendCompact6(scratch, p.Addr)
			}
		}
		dst = bencode.AppendString(dst, "peers6")
		dst = bencode.AppendBytes(dst, scratch)
	}
	return append(dst, 'e'), scratch
}

func appendCompact4(dst []byte, ap netip.AddrPort) []byte {
	ip := ap.Addr().Unmap().As4()
	port := ap.Port()
	return append(dst, ip[0], ip[1], ip[2], ip[3], byte(port>>8), byte(port))
}

func appendCompact6(dst []byte, ap netip.AddrPort) []byte {
	ip := ap.Addr().As16()
	port := ap.Port()
	dst = append(dst, ip[:]...)
	return append(dst, byte(port>>8), byte(port))
}

// appendPeerDict appends {ip, peer id, port}; ip is the textual address,
// IPv4-mapped addresses in their IPv4 form.
func appendPeerDict(dst []byte, p *bittorrent.Peer, noPeerID bool) []byte {
	var ipBuf [64]byte // longest IPv6 text is 45 bytes; zones are dropped
	ip := p.Addr.Addr().Unmap().WithZone("").AppendTo(ipBuf[:0])
	dst = append(dst, 'd')
	dst = bencode.AppendString(dst, "ip")
	dst = bencode.AppendBytes(dst, ip)
	if !noPeerID {
		dst = bencode.AppendString(dst, "peer id")
		dst = bencode.AppendBytes(dst, p.ID[:])
	}
	dst = bencode.AppendString(dst, "port")
	dst = bencode.AppendInt(dst, int64(p.Addr.Port()))
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
