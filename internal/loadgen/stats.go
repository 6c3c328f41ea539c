package loadgen

import (
	"cmp"
	"slices"
	"time"
)

// class is what a request was, for counting.
type class uint8

const (
	classConnect class = iota // UDP connect, or HTTP TCP connection
	classAnnounceLegit
	classAnnounceUnknown
	classScrapeLegit
	classScrapeUnknown // a scrape with at least one unknown hash
	numClasses
)

var classNames = [numClasses]string{"connect", "announce/legit", "announce/unknown", "scrape/legit", "scrape/unknown"}

func (c class) String() string { return classNames[c] }

// badReason is why a reply was counted as bad.
type badReason uint8

const (
	badShort     badReason = iota // too short for its header
	badAction                     // UDP action other than the request's or error
	badLength                     // length not what the request and address family allow
	badInterval                   // interval missing or not positive
	badPeers                      // more peers than numwant
	badTruncated                  // datagram larger than the receive buffer
	badStatus                     // HTTP status other than 200
	badHTTP                       // malformed HTTP response, or connection closed mid-reply
	badBencode                    // body not valid bencode, or missing required keys
	badTxID                       // UDP transaction ID that matches no request
	numBadReasons
)

var badNames = [numBadReasons]string{
	"short", "wrong action", "wrong length", "bad interval", "too many peers",
	"truncated", "http status", "malformed http", "bad bencode", "unknown transaction id",
}

func (r badReason) String() string { return badNames[r] }

// msgKey is a failure message as a comparable value, so counting one does
// not allocate. Longer messages are cut at len(b).
type msgKey struct {
	n uint8
	b [100]byte
}

func makeMsgKey(msg []byte) msgKey {
	var k msgKey
	k.n = uint8(copy(k.b[:], msg))
	return k
}

func (k msgKey) String() string {
	s := string(k.b[:k.n])
	if int(k.n) == len(k.b) {
		s += "…"
	}
	return s
}

// maxMessages bounds the distinct failure messages kept per class and
// worker; the rest are counted as other.
const maxMessages = 16

// msgCounter counts failure messages with bounded memory.
type msgCounter struct {
	m     map[msgKey]uint64
	other uint64
}

func (c *msgCounter) add(msg []byte) { c.addN(makeMsgKey(msg), 1) }

func (c *msgCounter) addN(k msgKey, n uint64) {
	if _, ok := c.m[k]; !ok && len(c.m) >= maxMessages {
		c.other += n
		return
	}
	if c.m == nil {
		c.m = make(map[msgKey]uint64, 4)
	}
	c.m[k] += n
}

func (c *msgCounter) merge(o *msgCounter) {
	for k, n := range o.m {
		c.addN(k, n)
	}
	c.other += o.other
}

// top returns the n most frequent messages, then "(other)" if any were
// dropped.
func (c *msgCounter) top(n int) []MessageCount {
	out := make([]MessageCount, 0, len(c.m)+1)
	for k, v := range c.m {
		out = append(out, MessageCount{Message: k.String(), Count: v})
	}
	slices.SortFunc(out, func(a, b MessageCount) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return cmp.Compare(a.Message, b.Message)
	})
	var rest uint64
	for _, m := range out[min(n, len(out)):] {
		rest += m.Count
	}
	out = out[:min(n, len(out))]
	if rest += c.other; rest > 0 {
		out = append(out, MessageCount{Message: "(other)", Count: rest})
	}
	return out
}

// classStats counts one class of request for one worker.
type classStats struct {
	sent, ok, failures, timeouts, bad, late uint64
	badReasons                              [numBadReasons]uint64
	failMsgs                                msgCounter
	badMsgs                                 msgCounter // details of bad replies, where there are any
	hist                                    *Histogram // latency of OK and failure replies; made on first use
	// closedIdle counts HTTP requests not sent, or not answered, because
	// the server had closed the kept-alive connection; they are not in
	// sent.
	closedIdle uint64
}

func (s *classStats) latency(d time.Duration) {
	if s.hist == nil {
		s.hist = new(Histogram)
	}
	s.hist.Record(d)
}

func (s *classStats) badReply(r badReason) {
	s.bad++
	s.badReasons[r]++
}

func (s *classStats) merge(o *classStats) {
	s.sent += o.sent
	s.ok += o.ok
	s.failures += o.failures
	s.timeouts += o.timeouts
	s.bad += o.bad
	s.late += o.late
	s.closedIdle += o.closedIdle
	s.badMsgs.merge(&o.badMsgs)
	for i, n := range o.badReasons {
		s.badReasons[i] += n
	}
	s.failMsgs.merge(&o.failMsgs)
	if o.hist != nil {
		if s.hist == nil {
			s.hist = new(Histogram)
		}
		s.hist.Merge(o.hist)
	}
}

// workerStats is everything one worker counts. Only that worker touches it
// until Run merges them after the workers have stopped.
type workerStats struct {
	classes [numClasses]classStats
	// unmatched counts replies that matched no request (unknown
	// transaction ID or too short to have one), by reason.
	unmatched  [numBadReasons]uint64
	ioErrors   uint64
	ioErrorMsg msgCounter
}

func (s *workerStats) merge(o *workerStats) {
	for i := range s.classes {
		s.classes[i].merge(&o.classes[i])
	}
	for i, n := range o.unmatched {
		s.unmatched[i] += n
	}
	s.ioErrors += o.ioErrors
	s.ioErrorMsg.merge(&o.ioErrorMsg)
}

// ioError counts an error from the socket layer (refused, reset, ...).
func (s *workerStats) ioError(err error) {
	s.ioErrors++
	s.ioErrorMsg.add([]byte(errText(err)))
}
