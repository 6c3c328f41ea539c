package httptracker

import (
	"math"
	"net/netip"
	"strings"

	"warden/internal/bittorrent"
)

// MaxAnnounceQuery is the longest announce query string accepted, in bytes.
// A real client's announce is 200-400 bytes; anything near this limit is
// garbage or an attempt to make the parser work, and is refused before any
// field is looked at.
const MaxAnnounceQuery = 4096

// ParseError reports a query that cannot be turned into a request. Op is
// "announce" or "scrape", Field the query key (or "query" for the query as a
// whole, "x-forwarded-for"/"x-real-ip" for a proxy header) and Msg what is
// wrong with it. Its text names only the field and the rule it broke, never
// the client's input, and is sent to the client as the failure reason.
type ParseError struct {
	Op    string
	Field string
	Msg   string
}

func (e *ParseError) Error() string { return e.Op + ": " + e.Field + ": " + e.Msg }

// The messages of ParseError. They are constants so the parser allocates
// only the ParseError itself, and only on failure.
const (
	msgMissing      = "missing"
	msgRepeated     = "given more than once"
	msgEscape       = "invalid percent-encoding"
	msgLen20        = "must be 20 bytes"
	msgPort         = "must be 1-65535"
	msgNotNumber    = "must be a decimal number"
	msgNegative     = "must not be negative"
	msgRange        = "out of range"
	msgEvent        = "must be started, completed, stopped, paused or empty"
	msgQueryTooLong = "longer than 4096 bytes"
	msgTooMany      = "too many (more than max_scrape_hashes)"
)

// announce is a parsed announce: the request for the tracker, plus how the
// client wants the reply written.
type announce struct {
	req      bittorrent.AnnounceRequest
	compact  bool // BEP 23 compact peer strings (the default)
	noPeerID bool // accepted; replies never carry peer IDs (none are stored)
}

// The announce keys parseAnnounce interprets; each may appear at most once.
const (
	seenInfoHash = 1 << iota
	seenPeerID
	seenPort
	seenUploaded
	seenDownloaded
	seenLeft
	seenEvent
	seenNumWant
	seenKey
	seenCompact
	seenNoPeerID
)

// parseAnnounce parses the raw (still percent-encoded) query of an announce
// into a, whose previous contents are overwritten. src is the peer's IP
// address as the server determined it; together with the announced port it
// becomes a.req.Addr. It does not allocate unless it returns an error,
// which is then a *ParseError.
//
// Keys are matched as sent (not percent-decoded); values are percent-decoded
// with '+' meaning a space. info_hash, peer_id and port are required. left
// is required too, because guessing it would make the tracker count a
// leecher as a seeder or the reverse. uploaded and downloaded default to 0,
// numwant to "the tracker's default" (-1), event to none, compact to 1.
// Every key above may be given once only: a repeated key is ambiguous (a
// proxy and the tracker could read different values), so it is refused.
//
// The ip, ipv4 and ipv6 keys are ignored, like every key not listed here
// (trackerid, corrupt, supportcrypto, requirecrypto, redundant, ...): the
// peer's address is always where the request came from. Honouring a
// client-supplied address would let anyone enter a third party's address
// into any swarm, turning every peer that downloads it into a flood aimed at
// that address, and would let one client fill a swarm with fake peers.
func parseAnnounce(query string, src netip.Addr, a *announce) error {
	*a = announce{compact: true}
	a.req.NumWant = -1
	if len(query) > MaxAnnounceQuery {
		return announceErr("query", msgQueryTooLong)
	}
	var seen uint
	var port uint64
	for query != "" {
		var key, val string
		key, val, query = nextPair(query)
		var bit uint
		var msg string
		switch key {
		case "info_hash":
			bit, msg = seenInfoHash, unescape20(a.req.InfoHash[:], val)
		case "peer_id":
			bit, msg = seenPeerID, unescape20(a.req.PeerID[:], val)
		case "port":
			bit = seenPort
			port, msg = parseUint(val)
			if msg != "" || port == 0 || port > math.MaxUint16 {
				msg = msgPort
			}
		case "uploaded":
			bit = seenUploaded
			a.req.Uploaded, msg = parseUint(val)
		case "downloaded":
			bit = seenDownloaded
			a.req.Downloaded, msg = parseUint(val)
		case "left":
			bit = seenLeft
			a.req.Left, msg = parseUint(val)
		case "event":
			bit = seenEvent
			a.req.Event, msg = parseEvent(val)
		case "numwant":
			bit = seenNumWant
			var n uint64
			n, msg = parseUint(val)
			// The tracker clamps numwant anyway; a huge one is a wish,
			// not a lie, so it is capped rather than refused.
			a.req.NumWant = int32(min(n, math.MaxInt32))
		case "key":
			bit = seenKey
			a.req.Key = parseKey(val)
		case "compact":
			bit = seenCompact
			a.compact = val != "0"
		case "no_peer_id":
			bit = seenNoPeerID
			a.noPeerID = val == "1"
		default:
			continue
		}
		if seen&bit != 0 {
			return announceErr(key, msgRepeated)
		}
		seen |= bit
		if msg != "" {
			return announceErr(key, msg)
		}
	}
	switch {
	case seen&seenInfoHash == 0:
		return announceErr("info_hash", msgMissing)
	case seen&seenPeerID == 0:
		return announceErr("peer_id", msgMissing)
	case seen&seenPort == 0:
		return announceErr("port", msgMissing)
	case seen&seenLeft == 0:
		return announceErr("left", msgMissing)
	}
	a.req.Addr = netip.AddrPortFrom(src, uint16(port))
	return nil
}

func announceErr(field, msg string) error {
	return &ParseError{Op: "announce", Field: field, Msg: msg}
}

// parseScrape appends the info hashes of a scrape query to hashes[:0], in
// the order given (duplicates kept). An empty result asks for a full scrape.
// More than max hashes is an error, so a query cannot make the slice grow
// without bound. Keys other than info_hash are ignored. It allocates only
// to grow hashes and, on failure, for the *ParseError.
func parseScrape(query string, max int, hashes []bittorrent.InfoHash) ([]bittorrent.InfoHash, error) {
	hashes = hashes[:0]
	for query != "" {
		var key, val string
		key, val, query = nextPair(query)
		if key != "info_hash" {
			continue
		}
		if len(hashes) == max {
			return hashes, scrapeErr("info_hash", msgTooMany)
		}
		var ih bittorrent.InfoHash
		if msg := unescape20(ih[:], val); msg != "" {
			return hashes, scrapeErr("info_hash", msg)
		}
		hashes = append(hashes, ih)
	}
	return hashes, nil
}

func scrapeErr(field, msg string) error {
	return &ParseError{Op: "scrape", Field: field, Msg: msg}
}

// nextPair splits the first key=value pair off a query: the pair ends at
// the first '&', the key at the pair's first '=' (a pair without one is a
// key with an empty value). Nothing is decoded.
func nextPair(query string) (key, val, rest string) {
	pair := query
	if i := strings.IndexByte(query, '&'); i >= 0 {
		pair, rest = query[:i], query[i+1:]
	}
	key = pair
	if i := strings.IndexByte(pair, '='); i >= 0 {
		key, val = pair[:i], pair[i+1:]
	}
	return key, val, rest
}

// unescape20 percent-decodes s into dst, which has 20 bytes, and returns a
// message if s is malformed or does not decode to exactly 20 bytes.
func unescape20(dst []byte, s string) string {
	n, msg := unescape(dst, s)
	if msg != "" {
		return msg
	}
	if n != len(dst) {
		return msgLen20
	}
	return ""
}

// unescape percent-decodes s into dst, '+' meaning a space, and returns the
// number of bytes written. If the decoded value is longer than dst, it
// returns len(dst)+1 and fills dst with the first bytes; a malformed escape
// gives a message instead.
func unescape(dst []byte, s string) (int, string) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			if i+2 >= len(s) {
				return 0, msgEscape
			}
			hi, lo := hexVal[s[i+1]], hexVal[s[i+2]]
			if hi|lo > 0xf {
				return 0, msgEscape
			}
			c = hi<<4 | lo
			i += 2
		case '+':
			c = ' '
		}
		if n == len(dst) {
			// Keep scanning: a malformed escape further on is
			// reported as such, not as "too long".
			n++
			continue
		}
		if n > len(dst) {
			continue
		}
		dst[n] = c
		n++
	}
	return n, ""
}

// hexVal maps a hex digit to its value and every other byte to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		v, ok := unhex(byte(i))
		if !ok {
			v = 0xff
		}
		t[i] = v
	}
	return t
}()

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseUint parses a percent-encoded decimal number. It refuses an empty
// value, a sign, anything but digits, and values above math.MaxUint64.
func parseUint(s string) (uint64, string) {
	var buf [24]byte
	n, msg := unescape(buf[:], s)
	if msg != "" {
		return 0, msgNotNumber
	}
	if n > len(buf) {
		if onlyDigits(s) {
			return 0, msgRange
		}
		return 0, msgNotNumber
	}
	b := buf[:n]
	if len(b) == 0 {
		return 0, msgNotNumber
	}
	if b[0] == '-' && len(b) > 1 && onlyDigits(b[1:]) {
		return 0, msgNegative
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, msgNotNumber
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, msgRange
		}
		v = v*10 + d
	}
	return v, ""
}

func onlyDigits[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// parseEvent maps the event key. "paused" (BEP 21, a partial seed idling)
// and the empty value are regular announces.
func parseEvent(s string) (bittorrent.Event, string) {
	switch s {
	case "", "paused":
		return bittorrent.EventNone, ""
	case "started":
		return bittorrent.EventStarted, ""
	case "completed":
		return bittorrent.EventCompleted, ""
	case "stopped":
		return bittorrent.EventStopped, ""
	}
	return bittorrent.EventNone, msgEvent
}

// parseKey reads the client's key leniently; it never fails. Clients send 8
// hex digits (libtorrent, uTorrent, Transmission), so up to 8 hex digits are
// read as hex; otherwise a decimal number that fits in 32 bits is read as
// decimal; anything else (longer, or other characters) is folded into 32
// bits with FNV-1a over the raw value, so it still tells clients apart.
// The tracker keys peers by address, not by key, so the key is advisory.
func parseKey(s string) uint32 {
	var buf [16]byte
	n, msg := unescape(buf[:], s)
	if msg == "" && n > 0 && n <= 8 {
		var v uint32
		ok := true
		for _, c := range buf[:n] {
			d, isHex := unhex(c)
			if !isHex {
				ok = false
				break
			}
			v = v<<4 | uint32(d)
		}
		if ok {
			return v
		}
	}
	if msg == "" && n > 0 && n <= len(buf) && onlyDigits(buf[:n]) {
		var v uint64 // at most 16 digits: cannot overflow
		for _, c := range buf[:n] {
			v = v*10 + uint64(c-'0')
		}
		if v <= math.MaxUint32 {
			return uint32(v)
		}
	}
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
