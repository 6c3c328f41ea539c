package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"warden/internal/bencode"
)

// Limits on what an HTTP reply may be; larger ones count as bad.
const (
	maxHTTPBody    = 1 << 20
	maxHTTPHeaders = 64
	httpBufSize    = 16 << 10 // also the longest header line
	dialBackoff    = 10 * time.Millisecond
)

// httpWorker is one simulated HTTP client: one keep-alive connection at a
// time from its own source address, one request in flight. It speaks just
// enough HTTP/1.1 (Content-Length, chunked, Connection: close, HTTP/1.0)
// to read a tracker's replies without the allocations of net/http.
type httpWorker struct {
	id     int
	run    *runState
	target httpTarget
	addr   string // the resolved target, for dialing
	dialer net.Dialer
	rng    *rand.Rand

	conn net.Conn
	used int // replies read on conn
	// oneShot is set once the server has closed kept-alive connections
	// under this worker a few times in a row: the worker then asks for
	// "Connection: close" and opens a connection per request instead of
	// losing a round trip to each dead one.
	oneShot     bool
	closedInRow int
	dialErr     error // of the last dial
	br          *bufio.Reader
	req         []byte
	body        []byte
	keepBody    int // if above 0, readResponse keeps no more of a body
	timer       *time.Timer

	tokens    float64
	lastToken int64

	peers    int
	nextPeer int
	started  []uint64
	sp       simPeer

	stats     workerStats
	warmStats workerStats
}

func (w *httpWorker) statsFor(measured bool, c class) *classStats {
	if measured {
		return &w.stats.classes[c]
	}
	return &w.warmStats.classes[c]
}

func prepareHTTP(ctx context.Context, rs *runState, rep *Report) (func() (*workerStats, error), error) {
	cfg := rs.cfg
	t, err := parseHTTPTarget(cfg.HTTP, cfg.AllowRemote)
	if err != nil {
		return nil, err
	}
	if !t.addr.IsValid() {
		if t.addr, err = resolve(ctx, t.name, t.port, cfg.Sources); err != nil {
			return nil, err
		}
	}
	rep.Target = cfg.HTTP + " (" + t.addr.String() + ")"
	srcs, distinct := sourceAddrs(cfg.Sources, cfg.Workers)
	rep.Sources = distinct
	workers := make([]*httpWorker, cfg.Workers)
	for i := range workers {
		w := &httpWorker{
			id: i, run: rs, target: t, addr: t.addr.String(),
			rng:   rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano()))),
			br:    bufio.NewReaderSize(nil, httpBufSize),
			timer: time.NewTimer(time.Hour),
			peers: rs.pop.peersOf(i),
		}
		w.timer.Stop()
		w.started = make([]uint64, (w.peers+63)/64)
		w.tokens = 1
		w.dialer.Timeout = cfg.Timeout
		if srcs != nil {
			// Bind before connecting, so the source is checked here, once.
			w.dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(srcs[i], 0))
			l, err := net.ListenTCP("tcp", w.dialer.LocalAddr.(*net.TCPAddr))
			if err != nil {
				return nil, fmt.Errorf("bind source %v: %w", srcs[i], err)
			}
			l.Close()
		}
		workers[i] = w
	}
	return func() (*workerStats, error) {
		rs.start()
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { w.loop(ctx) })
		}
		wg.Wait()
		total := new(workerStats)
		for _, w := range workers {
			total.merge(&w.stats)
			if w.oneShot {
				rep.OneShotWorkers++
			}
		}
		return total, nil
	}, nil
}

// sleep waits until the run-relative time until, or ctx is done. It
// reports false if ctx is done.
func (w *httpWorker) sleep(ctx context.Context, until int64) bool {
	d := time.Duration(until - w.run.now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	w.timer.Reset(d)
	select {
	case <-ctx.Done():
		w.timer.Stop()
		return false
	case <-w.timer.C:
		return true
	}
}

// loop sends requests one after another until Duration ends, the budget is
// spent or ctx is done. The last request is bounded by Timeout.
func (w *httpWorker) loop(ctx context.Context) {
	rs := w.run
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for {
		now := rs.now()
		if ctx.Err() != nil {
			rs.stopSending(now, stopCanceled)
			return
		}
		if now >= rs.stopSend || rs.budgetSpent() {
			return
		}
		if rs.ratePerNs > 0 {
			w.tokens = min(rs.burst, w.tokens+float64(now-w.lastToken)*rs.ratePerNs)
			w.lastToken = now
			if w.tokens < 1 {
				next := now + int64((1-w.tokens)/rs.ratePerNs) + 1
				w.sleep(ctx, min(next, rs.stopSend, now+maxWait))
				continue
			}
		}
		if w.conn == nil && !w.dial(ctx, now) {
			w.sleep(ctx, min(rs.now()+int64(dialBackoff), rs.stopSend))
			continue
		}
		if rs.reserve(1, now) == 0 {
			return
		}
		if rs.ratePerNs > 0 {
			w.tokens--
		}
		w.roundTrip(now)
	}
}

// dial opens a connection from the worker's source and counts it in the
// connect class.
func (w *httpWorker) dial(ctx context.Context, now int64) bool {
	rs := w.run
	st := w.statsFor(now >= rs.warmupEnd, classConnect)
	st.sent++
	c, err := w.dialer.DialContext(ctx, "tcp", w.addr)
	lat := time.Duration(rs.now() - now)
	w.dialErr = err
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			st.timeouts++
		} else {
			st.failures++
			st.failMsgs.add([]byte(errText(err)))
		}
		return false
	}
	st.ok++
	st.latency(lat)
	w.conn, w.used = c, 0
	w.br.Reset(c)
	return true
}

func (w *httpWorker) closeConn() {
	w.conn.Close()
	w.conn = nil
}

// oneShotAfter is how many kept-alive connections in a row the server may
// close under a worker before it stops reusing them.
const oneShotAfter = 3

func (w *httpWorker) sawClosedIdle(st *classStats) {
	st.closedIdle++
	if w.closedInRow++; w.closedInRow >= oneShotAfter {
		w.oneShot = true
	}
}

// closedIdle reports whether err means that the server had closed a
// kept-alive connection before this request arrived: nothing came back on a
// connection that has already carried a reply. Clients retry such a request
// on a new connection (RFC 9112, section 9.3.1), and so does the worker,
// without counting it.
func (w *httpWorker) closedIdle(err error) bool {
	return w.used > 0 && (errors.Is(err, errNoReply) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET))
}

// outcome is how one request ended.
type outcome uint8

const (
	outcomeOK      outcome = iota
	outcomeFailure         // a well-formed refusal
	outcomeTimeout
	outcomeBad
	// outcomeNotSent: the request could not be sent, or met a kept-alive
	// connection the server had closed; it is in no count, and may be
	// tried again on a new connection.
	outcomeNotSent
)

// roundTrip sends one request on the open connection and checks the reply.
func (w *httpWorker) roundTrip(now int64) {
	w.exchange(now, w.buildRequest())
}

// exchange sends w.req, a request of class c, on the open connection,
// checks the reply and counts it. It returns how the request ended and,
// for a failure, the failure reason. The connection is closed unless it
// may carry another request.
func (w *httpWorker) exchange(now int64, c class) (outcome, string) {
	rs := w.run
	measured := now >= rs.warmupEnd
	st := w.statsFor(measured, c)
	if err := w.conn.SetDeadline(rs.base.Add(time.Duration(now + rs.timeout))); err != nil {
		w.stats.ioError(err)
		w.closeConn()
		return outcomeNotSent, ""
	}
	if _, err := w.conn.Write(w.req); err != nil {
		if w.closedIdle(err) {
			w.sawClosedIdle(st)
		} else {
			w.stats.ioError(err)
		}
		w.closeConn()
		return outcomeNotSent, ""
	}
	status, keep, err := w.readResponse()
	lat := time.Duration(rs.now() - now)
	if err != nil {
		var ne net.Error
		out := outcomeNotSent
		switch {
		case w.closedIdle(err):
			w.sawClosedIdle(st)
		case errors.As(err, &ne) && ne.Timeout():
			st.sent++
			st.timeouts++
			out = outcomeTimeout
		default:
			st.sent++
			st.badReply(badHTTP)
			st.badMsgs.add([]byte(errText(err)))
			out = outcomeBad
		}
		w.closeConn()
		return out, ""
	}
	st.sent++
	if w.used++; w.used > 1 {
		w.closedInRow = 0
	}
	if !keep || w.oneShot {
		w.closeConn()
	}
	if status != 200 {
		st.badReply(badStatus)
		st.badMsgs.add(strconv.AppendInt([]byte("status "), int64(status), 10))
		return outcomeBad, ""
	}
	var failure string
	var bad badReason
	var ok bool
	if c == classAnnounceLegit || c == classAnnounceUnknown {
		failure, bad, ok = checkHTTPAnnounce(w.body, rs.cfg.NumWant)
	} else {
		failure, bad, ok = checkHTTPScrape(w.body, rs.cfg.ScrapeHashes)
	}
	switch {
	case !ok:
		st.badReply(bad)
		return outcomeBad, ""
	case failure != "":
		st.failures++
		st.failMsgs.add([]byte(failure))
		st.latency(lat)
		return outcomeFailure, failure
	}
	st.ok++
	st.latency(lat)
	return outcomeOK, ""
}

// buildRequest writes the next request into w.req and returns its class.
func (w *httpWorker) buildRequest() class {
	cfg := w.run.cfg
	hashes := w.run.pop.hashes
	b := w.req[:0]
	scrape := cfg.Scenario == ScenarioScrape ||
		cfg.Scenario == ScenarioMixed && w.rng.Float64() < cfg.ScrapeFraction
	var c class
	if scrape {
		c = classScrapeLegit
		b = append(b, "GET "...)
		b = append(b, w.target.scrapePrefix...)
		for i := range cfg.ScrapeHashes {
			var ih [20]byte
			if cfg.UnknownFraction > 0 && w.rng.Float64() < cfg.UnknownFraction {
				randomHash(w.rng, &ih)
				c = classScrapeUnknown
			} else {
				ih = hashes[w.rng.IntN(len(hashes))]
			}
			if i > 0 {
				b = append(b, '&')
			}
			b = append(b, "info_hash="...)
			b = appendEscaped(b, ih[:])
		}
	} else {
		j := w.nextPeer
		if w.nextPeer++; w.nextPeer == w.peers {
			w.nextPeer = 0
		}
		w.run.pop.fill(w.id, j, &w.sp)
		var ih [20]byte
		started := false
		c = classAnnounceLegit
		if cfg.UnknownFraction > 0 && w.rng.Float64() < cfg.UnknownFraction {
			randomHash(w.rng, &ih)
			c = classAnnounceUnknown
			started = true
		} else {
			ih = hashes[w.sp.torrent]
			if w.started[j/64]&(1<<(j%64)) == 0 {
				w.started[j/64] |= 1 << (j % 64)
				started = true
			}
		}
		a := httpAnnounce{
			infoHash: ih, peerID: w.sp.id, port: w.sp.port, left: w.sp.left,
			key: w.sp.key, numWant: cfg.NumWant, started: started,
		}
		b = appendHTTPAnnounce(b, w.target.announcePrefix, &a)
	}
	b = w.appendRequestEnd(b)
	w.req = b
	return c
}

// httpAnnounce is the content of an announce over HTTP.
type httpAnnounce struct {
	infoHash [20]byte
	peerID   [20]byte
	port     uint16
	left     uint64
	key      uint32
	numWant  int // -1: no numwant parameter
	started  bool
}

// appendHTTPAnnounce appends the request line of an announce, up to the
// query's end: "GET " + prefix + the parameters. appendRequestEnd ends it.
func appendHTTPAnnounce(b []byte, prefix string, a *httpAnnounce) []byte {
	b = append(b, "GET "...)
	b = append(b, prefix...)
	b = append(b, "info_hash="...)
	b = appendEscaped(b, a.infoHash[:])
	b = append(b, "&peer_id="...)
	b = appendEscaped(b, a.peerID[:])
	b = append(b, "&port="...)
	b = strconv.AppendUint(b, uint64(a.port), 10)
	b = append(b, "&uploaded=0&downloaded=0&left="...)
	b = strconv.AppendUint(b, a.left, 10)
	b = append(b, "&compact=1&key="...)
	b = strconv.AppendUint(b, uint64(a.key), 16)
	if a.numWant >= 0 {
		b = append(b, "&numwant="...)
		b = strconv.AppendInt(b, int64(a.numWant), 10)
	}
	if a.started {
		b = append(b, "&event=started"...)
	}
	return b
}

// appendRequestEnd appends the rest of a request after its target: the
// protocol, the headers and the empty line.
func (w *httpWorker) appendRequestEnd(b []byte) []byte {
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, w.target.host...)
	b = append(b, "\r\nUser-Agent: warden-load\r\n"...)
	if w.oneShot {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

func randomHash(rng *rand.Rand, ih *[20]byte) {
	for i := 0; i < 20; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, 20); j++ {
			ih[j] = byte(v)
			v >>= 8
		}
	}
}

// appendEscaped appends b percent-encoded for a query, keeping only the
// RFC 3986 unreserved characters.
func appendEscaped(dst, b []byte) []byte {
	const hexDigits = "0123456789ABCDEF"
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// errNoReply is a connection that ended before the first byte of a reply.
var errNoReply = errors.New("connection closed before the reply")

// errHTTP is a reply that breaks HTTP/1.x framing.
type errHTTP string

func (e errHTTP) Error() string { return "malformed http reply: " + string(e) }

// readResponse reads one response into w.body and returns its status and
// whether the connection may carry another request. With w.keepBody above
// 0 only that much of the body is kept, the rest read and dropped. It does
// not allocate once w.body has grown to the replies' size.
func (w *httpWorker) readResponse() (status int, keep bool, err error) {
	line, err := w.br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
			return 0, false, errNoReply
		}
		return 0, false, noBuffer(err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, errHTTP("status line")
	}
	code, ok := parseDecimal(line[9:12], 999)
	if !ok || code < 100 {
		return 0, false, errHTTP("status code")
	}
	status = int(code)
	keep = line[7] == '1'
	contentLength, chunked := -1, false
	for n := 0; ; n++ {
		if n == maxHTTPHeaders {
			return 0, false, errHTTP("too many headers")
		}
		line, err = w.br.ReadSlice('\n')
		if err != nil {
			return 0, false, noBuffer(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, errHTTP("header line")
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, ok := parseDecimal(value, 1<<31-1)
			if !ok {
				return 0, false, errHTTP("content-length")
			}
			contentLength = int(v)
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = containsFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if containsFold(value, []byte("close")) {
				keep = false
			} else if containsFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	w.body = w.body[:0]
	switch {
	case chunked:
		err = w.readChunked()
	case contentLength >= 0:
		if contentLength > maxHTTPBody {
			return 0, false, errHTTP("body too large")
		}
		err = w.readBody(contentLength)
	default: // body runs to the end of the connection
		keep = false
		err = w.readBody(-1)
	}
	if err != nil {
		return 0, false, noBuffer(err)
	}
	return status, keep, nil
}

// readBody appends n bytes of body to w.body, or with n < 0 all up to the
// end of the connection (at most maxHTTPBody), keeping no more than
// w.keepBody of them if that is set.
func (w *httpWorker) readBody(n int) error {
	toEOF := n < 0
	if toEOF {
		n = maxHTTPBody + 1
	}
	for n > 0 {
		if w.keepBody > 0 && len(w.body) >= w.keepBody {
			d, err := w.br.Discard(n)
			n -= d
			if err == io.EOF {
				if toEOF {
					return nil
				}
				return io.ErrUnexpectedEOF
			}
			if err != nil {
				return err
			}
			break
		}
		want := n
		if w.keepBody > 0 {
			want = min(want, w.keepBody-len(w.body))
		}
		if toEOF {
			want = min(want, httpBufSize)
		}
		k := len(w.body)
		w.body = grow(w.body, k+want)
		got, err := io.ReadAtLeast(w.br, w.body[k:], 1)
		w.body = w.body[:k+got]
		n -= got
		if err == io.EOF {
			if toEOF {
				return nil
			}
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	if toEOF {
		return errHTTP("body too large")
	}
	return nil
}

func (w *httpWorker) readChunked() error {
	total := 0
	for {
		line, err := w.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, ok := parseHex(bytes.TrimSpace(line), 1<<31-1)
		if !ok {
			return errHTTP("chunk size")
		}
		if size == 0 {
			break
		}
		if total += int(size); total > maxHTTPBody {
			return errHTTP("body too large")
		}
		if err := w.readBody(int(size)); err != nil {
			return err
		}
		if crlf, err := w.br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return errHTTP("chunk end")
		}
	}
	for n := 0; ; n++ { // trailers
		line, err := w.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
		if n == maxHTTPHeaders {
			return errHTTP("too many trailers")
		}
	}
}

// parseDecimal reads b as a decimal number of at most max, digits only.
func parseDecimal(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v = v*10 + uint64(c-'0'); v > max {
			return 0, false
		}
	}
	return v, true
}

// parseHex reads b as a hexadecimal number of at most max.
func parseHex(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		if v = v<<4 | uint64(d); v > max {
			return 0, false
		}
	}
	return v, true
}

// containsFold reports whether sub is within s, ignoring ASCII case.
func containsFold(s, sub []byte) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func noBuffer(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return errHTTP("header line too long")
	}
	return err
}

// grow returns b resized to n bytes, reusing its array when it can.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return append(b[:cap(b)], make([]byte, n-cap(b))...)
}

// httpAnnounceReply is what checkHTTPAnnounce looks at.
type httpAnnounceReply struct {
	FailureReason *string            `bencode:"failure reason"`
	Interval      *int64             `bencode:"interval"`
	Peers         bencode.RawMessage `bencode:"peers"`
	Peers6        bencode.RawMessage `bencode:"peers6"`
}

// checkHTTPAnnounce checks an announce reply body: valid bencode (BEP 3:
// sorted keys, no trailing bytes) holding either a failure reason, returned
// as failure, or a positive interval and peers, compact (6 bytes each, or
// 18 in peers6) or a list, no more than numWant unless numWant is -1.
func checkHTTPAnnounce(body []byte, numWant int) (failure string, bad badReason, ok bool) {
	var r httpAnnounceReply
	if err := bencode.Unmarshal(body, &r); err != nil {
		return "", badBencode, false
	}
	if r.FailureReason != nil {
		return *r.FailureReason, 0, true
	}
	if r.Interval == nil || *r.Interval <= 0 {
		return "", badInterval, false
	}
	if r.Peers == nil && r.Peers6 == nil {
		return "", badBencode, false
	}
	n := 0
	for _, p := range []struct {
		raw  bencode.RawMessage
		size int
	}{{r.Peers, 6}, {r.Peers6, 18}} {
		if p.raw == nil {
			continue
		}
		var compact []byte
		if bencode.Unmarshal(p.raw, &compact) == nil {
			if len(compact)%p.size != 0 {
				return "", badLength, false
			}
			n += len(compact) / p.size
			continue
		}
		var list []struct {
			IP   *string `bencode:"ip"`
			Port *int64  `bencode:"port"`
		}
		if p.size != 6 || bencode.Unmarshal(p.raw, &list) != nil {
			return "", badBencode, false
		}
		for _, e := range list {
			if e.IP == nil || e.Port == nil || *e.Port < 1 || *e.Port > 65535 {
				return "", badBencode, false
			}
		}
		n += len(list)
	}
	if numWant >= 0 && n > numWant {
		return "", badPeers, false
	}
	return "", 0, true
}

type httpScrapeFile struct {
	Complete   *int64 `bencode:"complete"`
	Incomplete *int64 `bencode:"incomplete"`
	Downloaded *int64 `bencode:"downloaded"`
}

type httpScrapeReply struct {
	FailureReason *string                   `bencode:"failure reason"`
	Files         map[string]httpScrapeFile `bencode:"files"`
}

// checkHTTPScrape checks a scrape reply body: valid bencode holding either
// a failure reason or a files dictionary of at most hashes entries, each
// keyed by a 20-byte info hash and holding the three counts. A tracker may
// leave out hashes it does not know.
func checkHTTPScrape(body []byte, hashes int) (failure string, bad badReason, ok bool) {
	var r httpScrapeReply
	if err := bencode.Unmarshal(body, &r); err != nil {
		return "", badBencode, false
	}
	if r.FailureReason != nil {
		return *r.FailureReason, 0, true
	}
	if r.Files == nil {
		return "", badBencode, false
	}
	if len(r.Files) > hashes {
		return "", badLength, false
	}
	for k, f := range r.Files {
		if len(k) != 20 || f.Complete == nil || f.Incomplete == nil || f.Downloaded == nil ||
			*f.Complete < 0 || *f.Incomplete < 0 || *f.Downloaded < 0 {
			return "", badBencode, false
		}
	}
	return "", 0, true
}
