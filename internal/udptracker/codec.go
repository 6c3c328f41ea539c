package udptracker

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"time"
	"unicode/utf8"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/ratelog"
	"warden/internal/reqstat"
	"warden/internal/tracker"
)

// Limits of this tracker; the wire format is package bep15's.
const (
	// maxPacket is the largest request handled; longer datagrams are
	// dropped. It holds an announce with 1950 bytes of BEP 41 options, or
	// a scrape of 101 hashes.
	maxPacket = 2048
	// maxScrapeHashes is how many hashes fit in maxPacket. The tracker's
	// MaxScrapeHashes may be lower; a scrape over it gets an error.
	maxScrapeHashes = (maxPacket - bep15.HeaderLen) / bep15.HashLen
	// errorCap bounds an error reply to max(request length, errorCap), so
	// an error never amplifies more than a short request's worth.
	errorCap = 100
	// maxRefusalText bounds the text of a refusal's error, which is sent
	// whole up to it (the reason and the operator's contact must reach the
	// client; the source is verified, so no one else receives it): the
	// reply then fits one datagram on any IPv6 path (1280-byte MTU, 1232
	// bytes of UDP payload). Only a revocation reason near the registry's
	// 1024-byte limit, with a long contact, is cut.
	maxRefusalText = 1232 - bep15.ReplyHeaderLen
	// maxDatagram is the largest UDP payload over IPv4.
	maxDatagram = 65507
)

// textInternal replaces the text of any tracker error that is not a
// bittorrent.ClientError.
const textInternal = "internal error"

// textBadEvent answers an announce whose event is not 0-3.
const textBadEvent = "invalid event"

// A codec turns one request datagram into its reply. It is a pure function
// of the datagram, the source address, the clock and the tracker state: no
// sockets. Each worker has its own codec, because the codec reuses one
// announce request, response and scrape slice for every datagram; a codec
// is not safe for concurrent use.
type codec struct {
	ctx      context.Context // passed to the tracker
	tr       *tracker.Tracker
	jar      *cookieJar
	stats    *counters
	errLog   *ratelog.Logger // tracker errors that are not ClientErrors
	maxPeers int             // peers per announce reply
	guard    *limit.Guard
	shed     bool           // the worker is behind: drop refusals instead of answering
	calm     *calmTable     // clients told why they are refused (Config.RefusalReply); nil: error every time
	sink     Sink           // told of every datagram; nil for none
	fam      reqstat.Family // the current datagram's source family

	// Scratch, reused so the steady state allocates nothing.
	ann     bep15.Announce
	req     bittorrent.AnnounceRequest
	resp    bittorrent.AnnounceResponse
	hashes  []bittorrent.InfoHash
	scrapes []bittorrent.Scrape
	one     [1]bittorrent.InfoHash // an announce's hash, for the sink
}

func newCodec(ctx context.Context, tr *tracker.Tracker, jar *cookieJar, stats *counters, errLog *ratelog.Logger) *codec {
	tc := tr.Config()
	maxPeers := min(max(tc.MaxNumWant, tc.DefaultNumWant), (maxDatagram-bep15.AnnounceReplyLen)/bittorrent.CompactLen6)
	return &codec{
		ctx:      ctx,
		tr:       tr,
		jar:      jar,
		stats:    stats,
		errLog:   errLog,
		maxPeers: maxPeers,
		resp:     bittorrent.AnnounceResponse{Peers: bittorrent.CompactPeers{Bytes: make([]byte, 0, maxPeers*bittorrent.CompactLen6)}},
		hashes:   make([]bittorrent.InfoHash, 0, maxScrapeHashes),
		scrapes:  make([]bittorrent.Scrape, 0, maxScrapeHashes),
	}
}

// maxReply is the longest reply handle writes, so an out buffer of this
// capacity never grows.
func (c *codec) maxReply() int {
	return max(bep15.AnnounceReplyLen+c.maxPeers*bittorrent.CompactLen6,
		bep15.ReplyHeaderLen+maxScrapeHashes*bep15.ScrapeEntryLen, maxPacket)
}

// handle answers the datagram pkt from src. It appends the reply to out
// and returns it, or returns nil if pkt gets no reply. It never panics and
// does not allocate once out has capacity for maxReply bytes.
//
// The rules, in the order they apply:
//   - A datagram shorter than 16 bytes or longer than maxPacket, or from
//     an invalid address or port 0, is dropped.
//   - A connect (action 0) with the protocol magic gets a 16-byte reply
//     carrying a connection ID; with any other magic it is dropped. The
//     reply is never longer than the request, so a spoofed source gains
//     no amplification. A connect over its address's connect rate
//     (limit.Guard.AllowConnect) is dropped; it is never banned for it.
//   - Actions other than 0, 1 and 2 are dropped.
//   - An announce or scrape whose connection ID was not issued to this
//     source IP in the last one to two minutes is dropped. Nothing is
//     stored and nothing is allocated for such a source.
//   - A malformed announce or scrape from a verified source is dropped;
//     one the tracker fails gets an error action whose text is the
//     bittorrent.ClientError's, cut to keep the reply no longer than
//     max(len(pkt), 100) bytes.
//   - One the tracker refuses (a *bittorrent.Refusal: a torrent not
//     tracked) gets an error action with the whole refusal text (up to
//     maxRefusalText), or, with calm refusal replies (c.calm), when the
//     same client was told within the refusal interval, a 20-byte
//     announce reply: no peers, zero counts, the refusal interval. While
//     the worker is behind (c.shed), refusals get no reply.
//
// Every outcome is counted in c.stats; none is logged per datagram.
func (c *codec) handle(src netip.AddrPort, pkt, out []byte) []byte {
	return c.handleAt(src, pkt, out, c.jar.now())
}

// handleAt is handle at the time now: a worker reads the clock once per
// batch, not twice per datagram.
func (c *codec) handleAt(src netip.AddrPort, pkt, out []byte, now time.Time) []byte {
	c.stats.inc(cReceived)
	// A dual-stack socket reports IPv4 sources as ::ffff:a.b.c.d. The
	// zone of a link-local source says which interface it came in on,
	// which the socket layer keeps for the reply; it is no part of the
	// peer's identity.
	ip := src.Addr().Unmap().WithZone("")
	c.fam = reqstat.FamilyOf(ip)
	h, ok := bep15.ParseHeader(pkt)
	if !ok || len(pkt) > maxPacket || !src.IsValid() || src.Port() == 0 {
		c.stats.inc(cDroppedBadPacket)
		c.count(reqstat.Other, reqstat.BadRequest)
		if src.IsValid() {
			c.report(ip, EventGarbage, false, Answered, now)
		}
		return nil
	}
	if c.guard.Blocked(ip) {
		c.stats.inc(cDroppedBlocked)
		c.count(requestKind(h.Action), reqstat.Blocked)
		c.report(ip, blockedKind(h.Action), false, Blocked, now)
		return nil
	}
	switch h.Action {
	case bep15.ActionConnect:
		if h.ConnID != bep15.ProtocolID {
			c.stats.inc(cDroppedBadPacket)
			c.count(reqstat.Other, reqstat.BadRequest)
			c.report(ip, EventGarbage, false, Answered, now)
			return nil
		}
		if !c.guard.AllowConnect(ip, now) {
			c.stats.inc(cDroppedConnectLimited)
			c.count(reqstat.Connect, reqstat.Limited)
			c.report(ip, EventConnect, false, Limited, now)
			return nil
		}
		c.stats.inc(cConnects)
		c.count(reqstat.Connect, reqstat.OK)
		c.report(ip, EventConnect, false, Answered, now)
		return bep15.AppendConnectReply(out, h.TxID, c.jar.issue(ip, now))
	case bep15.ActionAnnounce, bep15.ActionScrape:
		kind := EventAnnounce
		if h.Action == bep15.ActionScrape {
			kind = EventScrape
		}
		if !c.jar.valid(ip, h.ConnID, now) {
			c.stats.inc(cDroppedBadCookie)
			c.count(requestKind(h.Action), reqstat.BadRequest)
			c.report(ip, EventForgedCookie, false, Answered, now)
			return nil
		}
		if !c.allowed(ip, kind, now) {
			return nil
		}
		if h.Action == bep15.ActionAnnounce {
			return c.announce(ip, h.TxID, pkt, out, now)
		}
		return c.scrape(ip, h.TxID, pkt, out, now)
	}
	c.stats.inc(cDroppedUnknownAction)
	c.count(reqstat.Other, reqstat.BadRequest)
	c.report(ip, EventGarbage, false, Answered, now)
	return nil
}

// count counts a datagram from the current source by kind and outcome.
func (c *codec) count(k reqstat.Kind, o reqstat.Outcome) { c.stats.req.Count(k, c.fam, o) }

// requestKind is the kind of request action asks for.
func requestKind(action uint32) reqstat.Kind {
	switch action {
	case bep15.ActionConnect:
		return reqstat.Connect
	case bep15.ActionAnnounce:
		return reqstat.Announce
	case bep15.ActionScrape:
		return reqstat.Scrape
	}
	return reqstat.Other
}

// eventKind is the request kind of an announce or scrape event.
func eventKind(k EventKind) reqstat.Kind {
	if k == EventScrape {
		return reqstat.Scrape
	}
	return reqstat.Announce
}

// blockedKind is what a blocklisted datagram claims to be; its connection
// ID is not checked.
func blockedKind(action uint32) EventKind {
	switch action {
	case bep15.ActionConnect:
		return EventConnect
	case bep15.ActionAnnounce:
		return EventAnnounce
	case bep15.ActionScrape:
		return EventScrape
	}
	return EventGarbage
}

// allowed charges a request from the verified address ip to the guard,
// counting (and reporting) a drop if it is over its rate or banned.
func (c *codec) allowed(ip netip.Addr, kind EventKind, now time.Time) bool {
	switch v := c.guard.Check(ip, now); v {
	case limit.Allowed:
		return true
	case limit.Limited:
		c.stats.inc(cDroppedLimited)
		c.count(eventKind(kind), reqstat.Limited)
		c.report(ip, kind, true, Limited, now)
	default:
		c.stats.inc(cDroppedBanned)
		out, counted := Banned, reqstat.Banned
		if v == limit.Blocked {
			out, counted = Blocked, reqstat.Blocked
		}
		c.count(eventKind(kind), counted)
		c.report(ip, kind, true, out, now)
	}
	return false
}

// announce handles an announce from the verified address ip.
//
// The request's IP address field is ignored: the peer is recorded at the
// datagram's source IP. A connection ID proves only that the sender
// receives packets at its source address; honouring the field would let
// anyone enter a victim's address into swarms and have every peer that
// receives it connect there.
func (c *codec) announce(ip netip.Addr, tid uint32, pkt, out []byte, now time.Time) []byte {
	opts, ok := bep15.ParseAnnounce(pkt, &c.ann)
	if !ok {
		c.stats.inc(cDroppedBadPacket)
		c.count(reqstat.Announce, reqstat.BadRequest)
		c.report(ip, EventGarbage, true, Answered, now)
		return nil
	}
	// BEP 41 options carry only hints (the tracker URL's path and query)
	// that warden does not use; a malformed list is skipped like a
	// well-formed one.
	_ = bep15.ValidOptions(opts)
	a := &c.ann
	if a.Event > uint32(bittorrent.EventStopped) {
		c.stats.inc(cAnnouncesFailed)
		c.count(reqstat.Announce, reqstat.BadRequest)
		c.report(ip, EventGarbage, true, Answered, now)
		return c.appendError(out, tid, textBadEvent, max(len(pkt), errorCap))
	}
	// Cleared, then set field by field: cheaper than a composite literal
	// here, which would be built aside and copied.
	r := &c.req
	*r = bittorrent.AnnounceRequest{}
	r.InfoHash = a.InfoHash
	r.PeerID = a.PeerID
	r.Addr = netip.AddrPortFrom(ip, a.Port)
	r.Downloaded = a.Downloaded
	r.Left = a.Left
	r.Uploaded = a.Uploaded
	r.Event = bittorrent.Event(a.Event) // BEP 15 numbers events as bittorrent.Event does
	r.NumWant = a.NumWant               // -1 (any negative): the tracker's default
	r.Key = a.Key
	c.one[0] = a.InfoHash
	if err := c.tr.Announce(c.ctx, &c.req, &c.resp); err != nil {
		ref, refused := err.(*bittorrent.Refusal)
		if refused {
			c.guard.ChargeRefusal(ip, now)
		}
		c.reportParsed(ip, EventAnnounce, outcomeOf(refused), c.one[:], &c.req, now)
		if refused && !c.shed && c.calm != nil && c.calm.told(ip, a.Port, a.InfoHash, now) {
			c.count(reqstat.Announce, c.tr.Outcome(err))
			return c.calmReply(out, tid, ref)
		}
		return c.fail(out, tid, err, len(pkt), reqstat.Announce, cAnnouncesFailed)
	}
	c.reportParsed(ip, EventAnnounce, Answered, c.one[:], &c.req, now)
	c.stats.inc(cAnnouncesOK)
	c.count(reqstat.Announce, reqstat.OK)
	return appendAnnounce(out, tid, &c.resp, ip.Is4(), c.maxPeers)
}

// appendAnnounce encodes resp: 6-byte peers for an IPv4 requester, 18-byte
// peers for an IPv6 one (the IPv6 note of BEP 15), as the store wrote
// them. Peers of the other family (which the store never returns) are left
// out, and so is any peer beyond maxPeers.
func appendAnnounce(out []byte, tid uint32, resp *bittorrent.AnnounceResponse, v4 bool, maxPeers int) []byte {
	var peers []byte
	if p := &resp.Peers; p.V6 != v4 {
		peers = p.Bytes[:min(len(p.Bytes), maxPeers*p.EntryLen())]
	}
	r := bep15.AnnounceReply{Interval: seconds(resp.Interval), Leechers: resp.Incomplete, Seeders: resp.Complete}
	return bep15.AppendAnnounceReply(out, tid, r, peers)
}

func seconds(d time.Duration) uint32 {
	return uint32(min(max(d/time.Second, 0), math.MaxInt32))
}

// scrape handles a scrape from the verified address ip.
func (c *codec) scrape(ip netip.Addr, tid uint32, pkt, out []byte, now time.Time) []byte {
	var ok bool
	if c.hashes, ok = bep15.ParseScrape(pkt, c.hashes[:0]); !ok {
		c.stats.inc(cDroppedBadPacket)
		c.count(reqstat.Scrape, reqstat.BadRequest)
		c.report(ip, EventGarbage, true, Answered, now)
		return nil
	}
	var err error
	c.scrapes, err = c.tr.Scrape(c.ctx, ip, c.hashes, c.scrapes)
	_, refused := err.(*bittorrent.Refusal)
	if refused {
		c.guard.ChargeRefusal(ip, now)
	}
	c.reportParsed(ip, EventScrape, outcomeOf(refused), c.hashes, nil, now)
	if err != nil {
		return c.fail(out, tid, err, len(pkt), reqstat.Scrape, cScrapesFailed)
	}
	c.stats.inc(cScrapesOK)
	c.count(reqstat.Scrape, reqstat.OK)
	return bep15.AppendScrapeReply(out, tid, c.scrapes)
}

// outcomeOf is the outcome of a request the tracker answered, refused or
// not.
func outcomeOf(refused bool) Outcome {
	if refused {
		return Refused
	}
	return Answered
}

// calmReply answers a refused announce from a client that was told the
// reason within the refusal interval: an announce reply with no peers and
// zero counts, whose interval is the refusal's. Clients honour the
// interval of an announce reply, where an error makes them retry within
// a minute. It is counted as a failed announce, and as calmed.
func (c *codec) calmReply(out []byte, tid uint32, ref *bittorrent.Refusal) []byte {
	c.stats.inc(cAnnouncesFailed)
	c.stats.inc(cRefusalsCalmed)
	return bep15.AppendAnnounceReply(out, tid, bep15.AnnounceReply{Interval: seconds(ref.Interval)}, nil)
}

// fail answers a request the tracker refused or failed with an error
// action, counted as failed: a refusal with its whole text (up to
// maxRefusalText), anything else with its client text cut to
// max(reqLen, errorCap). While the worker is behind, a refusal (a torrent
// not tracked) is dropped instead: answering it costs a send, and those
// sends are what a flood of foreign torrents would otherwise spend the
// worker on.
func (c *codec) fail(out []byte, tid uint32, err error, reqLen int, kind reqstat.Kind, failed counter) []byte {
	ref, refused := err.(*bittorrent.Refusal)
	if refused && c.shed {
		c.stats.inc(cShedRefusals)
		c.count(kind, reqstat.Shed)
		return nil
	}
	c.stats.inc(failed)
	c.count(kind, c.tr.Outcome(err))
	if refused {
		return c.appendError(out, tid, ref.Reason, bep15.ReplyHeaderLen+maxRefusalText)
	}
	return c.appendError(out, tid, c.clientText(err), max(reqLen, errorCap))
}

// clientText returns the text the client may see for a tracker error that
// is not a refusal.
func (c *codec) clientText(err error) string {
	if ce, ok := err.(bittorrent.ClientError); ok { // the common case, without errors.As's allocation
		return string(ce)
	}
	var ce bittorrent.ClientError
	if errors.As(err, &ce) {
		return string(ce)
	}
	c.errLog.Log("tracker error", slog.Any("err", err))
	return textInternal
}

// appendError appends an error action carrying msg, cut at a UTF-8
// boundary so the reply is at most maxLen bytes.
func (c *codec) appendError(out []byte, tid uint32, msg string, maxLen int) []byte {
	c.stats.inc(cErrorsSent)
	if limit := maxLen - bep15.ReplyHeaderLen; len(msg) > limit {
		for limit > 0 && !utf8.RuneStart(msg[limit]) {
			limit--
		}
		msg = msg[:limit]
	}
	return bep15.AppendError(out, tid, msg)
}
