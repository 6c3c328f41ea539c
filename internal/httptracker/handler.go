package httptracker

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/ratelog"
	"warden/internal/reqstat"
	"warden/internal/tracker"
)

// Stats counts the requests a Server has answered since it started. It is
// a snapshot; fields are JSON-friendly.
type Stats struct {
	// AnnouncesOK are announces answered with peers.
	AnnouncesOK uint64 `json:"announces_ok"`
	// AnnouncesFailed are announces answered with a failure reason:
	// malformed, refused by the tracker, or an internal error.
	AnnouncesFailed uint64 `json:"announces_failed"`
	// ScrapesOK are scrapes answered with counts.
	ScrapesOK uint64 `json:"scrapes_ok"`
	// ScrapesFailed are scrapes answered with a failure reason.
	ScrapesFailed uint64 `json:"scrapes_failed"`
	// BadRequests are requests for another path (404) or with a method
	// other than GET or HEAD (405).
	BadRequests uint64 `json:"bad_requests"`
	// Limited are requests refused because their source was over its rate.
	Limited uint64 `json:"limited"`
	// Banned are requests from banned or blocklisted sources.
	Banned uint64 `json:"banned"`
	// BadForwards are requests from a trusted proxy whose client address
	// header was missing or malformed; they are charged to the proxy.
	BadForwards uint64 `json:"bad_forwards"`
	// ConnsOpen is the number of connections open now.
	ConnsOpen uint64 `json:"conns_open"`
	// ConnsRefused are connections closed at accept: a blocklisted or
	// banned source, one at max_conns_per_source, max_conns_per_prefix or
	// max_conns_per_proxy, or any when max_conns are open and none may
	// be closed for it.
	ConnsRefused uint64 `json:"conns_refused"`
	// ConnsEvicted are idle connections closed to make room for a source
	// holding fewer, when max_conns were open.
	ConnsEvicted uint64 `json:"conns_evicted"`

	// Requests counts the requests again by kind, source address family
	// and outcome, and times them (from the request's header read to the
	// handler's return).
	Requests reqstat.Table `json:"requests"`
}

// counter is an atomic counter on a cache line of its own, so that cores
// counting different outcomes do not contend.
type counter struct {
	n atomic.Uint64
	_ cpu.CacheLinePad
}

type counters struct {
	announcesOK, announcesFailed counter
	scrapesOK, scrapesFailed     counter
	badRequests                  counter
	limited, banned              counter
	badForwards                  counter
	connsRefused, connsEvicted   counter
	req                          reqstat.Counters
}

// handler serves /announce and /scrape. It is safe for concurrent use.
type handler struct {
	tr         *tracker.Tracker
	trusted    []netip.Prefix
	header     string // canonical client address header; "" for none
	fullScrape bool
	maxScrape  int
	guard      *limit.Guard // nil: no limits
	sink       Sink         // told of every request; nil for none
	// The answers to sources the guard stops, with the abuse contact:
	// built once, they cost no allocation and no tracker work.
	limitedReply, bannedReply []byte
	log                       *slog.Logger
	errLog                    *ratelog.Logger // errors a client's request ran into
	proxyLog                  *ratelog.Logger // trusted proxies sending unusable headers
	stats                     counters
	states                    sync.Pool // *reqState
}

// reqState is the working memory of one request. Pooled: an announce
// through net/http otherwise allocates its peer slice and reply buffer
// every time (see BenchmarkAnnounce/fresh_state).
type reqState struct {
	a       announce
	resp    bittorrent.AnnounceResponse
	buf     []byte
	scratch []byte
	hashes  []bittorrent.InfoHash
	scrapes []bittorrent.Scrape
	one     [1]bittorrent.InfoHash // an announce's hash, for the sink
}

// maxPooledBytes is the largest buffer a reqState keeps when it goes back
// to the pool; a full scrape's reply is left to the garbage collector.
const maxPooledBytes = 64 << 10

// newHandler returns a handler; header is the canonical name of the client
// address header read from trusted proxies ("" for none).
func newHandler(tr *tracker.Tracker, trusted []netip.Prefix, header string, fullScrape bool, log *slog.Logger) *handler {
	return &handler{
		tr:           tr,
		trusted:      trusted,
		header:       header,
		fullScrape:   fullScrape,
		maxScrape:    tr.Config().MaxScrapeHashes,
		limitedReply: appendFailure(nil, []byte(tr.WithContact(textLimited))),
		bannedReply:  appendFailure(nil, []byte(tr.WithContact(textBanned))),
		log:          log,
		errLog:       ratelog.New(log, slog.LevelError, time.Second, nil),
		proxyLog:     ratelog.New(log, slog.LevelWarn, time.Minute, nil),
		states:       sync.Pool{New: func() any { return new(reqState) }},
	}
}

func (h *handler) getState() *reqState { return h.states.Get().(*reqState) }

func (h *handler) putState(st *reqState) {
	if cap(st.buf) > maxPooledBytes {
		st.buf = nil
	}
	if cap(st.scratch) > maxPooledBytes {
		st.scratch = nil
	}
	if cap(st.scrapes) > maxPooledBytes/32 {
		st.scrapes = nil
	}
	h.states.Put(st)
}

// Header values shared by every reply. net/http only reads them; they must
// never be modified.
var (
	textPlain = []string{"text/plain"}
	allowGet  = []string{"GET, HEAD"}
)

// ServeHTTP answers GET and HEAD on /announce and /scrape; other paths get
// 404 and other methods 405, each with a one-line body. HEAD is answered
// like GET (an announce is recorded) without the body.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var announce bool
	switch r.URL.Path {
	case "/announce":
		announce = true
	case "/scrape":
	default:
		h.stats.badRequests.n.Add(1)
		h.other(r)
		w.Header()["Content-Type"] = textPlain
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("not found\n"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.stats.badRequests.n.Add(1)
		h.other(r)
		w.Header()["Allow"] = allowGet
		w.Header()["Content-Type"] = textPlain
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("method not allowed\n"))
		return
	}
	src, srcErr := sourceAddr(r, h.trusted, h.header) // the error is reported by the request's parse
	if srcErr != nil && src.IsValid() {
		h.badForward(src, srcErr)
	}
	kind, rk := EventScrape, reqstat.Scrape
	if announce {
		kind, rk = EventAnnounce, reqstat.Announce
	}
	fam := reqstat.FamilyOf(src)
	// Every request is charged, a trusted proxy's with an unusable header
	// included: to the proxy, whose address src then is, so that such
	// requests cannot be sent for free.
	var now time.Time
	if src.IsValid() {
		now = time.Now()
		if o, ok := h.allowed(w, r, src, kind, now); !ok {
			h.stats.req.Count(rk, fam, o)
			h.stats.req.Observe(time.Since(now), 1)
			return
		}
	}
	st := h.getState()
	var o reqstat.Outcome
	if announce {
		o = h.announce(w, r, src, srcErr, st, now)
	} else {
		o = h.scrape(w, r, src, srcErr, st, now)
	}
	h.putState(st)
	h.stats.req.Count(rk, fam, o)
	if !now.IsZero() {
		h.stats.req.Observe(time.Since(now), 1)
	}
}

// other counts a request for another path or with another method, and
// tells the sink of it.
func (h *handler) other(r *http.Request) {
	src, _ := sourceAddr(r, h.trusted, h.header)
	h.stats.req.Count(reqstat.Other, reqstat.FamilyOf(src), reqstat.BadRequest)
	if h.sink == nil {
		return
	}
	h.report(r, src, EventOther, Answered, time.Now())
}

// announce answers an announce from src (or the error finding it), and
// returns its outcome.
func (h *handler) announce(w http.ResponseWriter, r *http.Request, src netip.Addr, err error, st *reqState, now time.Time) reqstat.Outcome {
	if err == nil {
		err = parseAnnounce(r.URL.RawQuery, src, &st.a)
		if err != nil {
			h.report(r, src, EventMalformed, Answered, now)
		}
	}
	if err == nil {
		err = h.tr.Announce(r.Context(), &st.a.req, &st.resp)
		_, refused := err.(*bittorrent.Refusal)
		if refused {
			h.guard.ChargeRefusal(src, now)
		}
		st.one[0] = st.a.req.InfoHash
		h.reportParsed(r, src, EventAnnounce, outcomeOf(refused), st.one[:], &st.a, now)
	}
	if err != nil {
		h.stats.announcesFailed.n.Add(1)
		h.writeFailure(w, st, "announce", err)
		return h.outcome(err)
	}
	h.stats.announcesOK.n.Add(1)
	st.buf = appendAnnounce(st.buf[:0], &st.a, &st.resp)
	writeBody(w, st.buf)
	return reqstat.OK
}

// scrape answers a scrape from src (or the error finding it), and returns
// its outcome.
func (h *handler) scrape(w http.ResponseWriter, r *http.Request, src netip.Addr, srcErr error, st *reqState, now time.Time) reqstat.Outcome {
	var err error
	st.hashes, err = parseScrape(r.URL.RawQuery, h.maxScrape, st.hashes)
	switch {
	case err != nil:
		h.report(r, src, EventMalformed, Answered, now)
	case len(st.hashes) > 0:
		if err = srcErr; err == nil {
			st.scrapes, err = h.tr.Scrape(r.Context(), src, st.hashes, st.scrapes)
			_, refused := err.(*bittorrent.Refusal)
			if refused {
				h.guard.ChargeRefusal(src, now)
			}
			h.reportParsed(r, src, EventScrape, outcomeOf(refused), st.hashes, nil, now)
		}
	case !h.fullScrape:
		err = errNoFullScrape
		h.report(r, src, EventScrape, Answered, now)
	default:
		h.report(r, src, EventScrape, Answered, now)
		st.scrapes = st.scrapes[:0]
		err = h.tr.ScrapeAll(r.Context(), func(s bittorrent.Scrape) bool {
			st.scrapes = append(st.scrapes, s)
			return true
		})
	}
	if err != nil {
		h.stats.scrapesFailed.n.Add(1)
		h.writeFailure(w, st, "scrape", err)
		return h.outcome(err)
	}
	h.stats.scrapesOK.n.Add(1)
	st.buf = appendScrape(st.buf[:0], st.scrapes)
	writeBody(w, st.buf)
	return reqstat.OK
}

// The texts of the replies to sources the guard stops; the operator's
// abuse contact follows them, as it follows refusals.
const (
	textLimited = "rate limit exceeded: announce less often"
	textBanned  = "banned for abuse: too many requests"
)

var connClose = []string{"close"}

// allowed charges a request of kind from src to the guard and, if the
// source is over its rate or banned, answers with a short failure and
// returns false with the outcome. A banned source's connection is closed
// after the reply.
func (h *handler) allowed(w http.ResponseWriter, r *http.Request, src netip.Addr, kind EventKind, now time.Time) (reqstat.Outcome, bool) {
	if h.guard == nil {
		return reqstat.OK, true
	}
	switch v := h.guard.Check(src, now); v {
	case limit.Allowed:
		return reqstat.OK, true
	case limit.Limited:
		h.stats.limited.n.Add(1)
		h.report(r, src, kind, Limited, now)
		writeBody(w, h.limitedReply)
		return reqstat.Limited, false
	default:
		h.stats.banned.n.Add(1)
		out, counted := Banned, reqstat.Banned
		if v == limit.Blocked {
			out, counted = Blocked, reqstat.Blocked
		}
		h.report(r, src, kind, out, now)
		w.Header()["Connection"] = connClose
		writeBody(w, h.bannedReply)
		return counted, false
	}
}

// outcomeOf is the outcome of a request the tracker answered, refused or
// not.
func outcomeOf(refused bool) Outcome {
	if refused {
		return Refused
	}
	return Answered
}

// badForward counts a request from trusted proxy src without a usable
// client address, and tells the operator (at most once a minute): the
// proxy is not setting the header client_ip_header names.
func (h *handler) badForward(src netip.Addr, err error) {
	h.stats.badForwards.n.Add(1)
	h.proxyLog.Log("trusted proxy sent no usable client address; check that it sets client_ip_header",
		slog.String("proxy", src.String()), slog.String("header", h.header), slog.Any("err", err))
}

// errNoFullScrape answers a scrape without info_hash when full_scrape is off.
var errNoFullScrape = bittorrent.ClientError("full scrape is disabled: give info_hash")

// writeFailure replies with a failure reason: the text of a ParseError or
// ClientError, which are written for clients, or "internal error" for
// anything else, which is logged (rate-limited) instead.
func (h *handler) writeFailure(w http.ResponseWriter, st *reqState, op string, err error) {
	if ref, ok := err.(*bittorrent.Refusal); ok {
		st.buf = appendRefusal(st.buf[:0], ref)
		writeBody(w, st.buf)
		return
	}
	reason := clientReason(err, st.scratch[:0])
	if reason == nil {
		reason = append(st.scratch[:0], "internal error"...)
		h.errLog.Log("request failed", slog.String("op", op), slog.Any("err", err))
	}
	st.buf = appendFailure(st.buf[:0], reason)
	st.scratch = reason[:0] // keep what it grew to
	writeBody(w, st.buf)
}

// clientReason appends to dst the text of the ParseError or ClientError in
// err's chain and returns it, or returns nil if there is none. It does not
// allocate once dst has room: the usual, unwrapped errors are matched
// without errors.As (whose target escapes), and a ParseError's text is
// assembled in dst rather than by Error.
func clientReason(err error, dst []byte) []byte {
	pe, isParse := err.(*ParseError)
	ce, isClient := err.(bittorrent.ClientError)
	if !isParse && !isClient {
		pe, isParse = errors.AsType[*ParseError](err)
		ce, isClient = errors.AsType[bittorrent.ClientError](err)
	}
	switch {
	case isParse:
		dst = append(dst, pe.Op...)
		dst = append(dst, ": "...)
		dst = append(dst, pe.Field...)
		dst = append(dst, ": "...)
		return append(dst, pe.Msg...)
	case isClient:
		return append(dst, ce...)
	}
	return nil
}

// writeBody writes a complete 200 text/plain reply. A body of up to
// 2048 bytes (net/http's buffer before it switches to chunked encoding)
// gets its Content-Length from net/http at no cost; a longer one has it set
// here, so that HTTP/1.0 keep-alive clients and proxies see a length.
func writeBody(w http.ResponseWriter, body []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = textPlain
	if len(body) > 2048 {
		hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.Write(body)
}

// outcome is the outcome of a request answered with err: a query that did
// not parse is a bad request, the rest as the tracker classifies them.
func (h *handler) outcome(err error) reqstat.Outcome {
	if _, ok := err.(*ParseError); ok {
		return reqstat.BadRequest
	}
	return h.tr.Outcome(err)
}
