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
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The HTTP flood: Config.FloodConns connections (one per flood source by
// default), spread over the flood sources in turn, each with its own
// goroutine and one of four behaviours, split by the weights of
// Config.FloodMix:
//
//	pipeline  keep-alive. A new connection carries one request; once a
//	          reply shows that the server keeps the connection, up to
//	          FloodPipeline requests are kept in flight, a new one written
//	          as each reply comes (HTTP/1.1 pipelining). Against a server
//	          that closes after every reply this is a connection per
//	          request, and no request is written that it would not read
//	          (if it closes without saying so, as opentracker does, after
//	          oneShotAfter such connections every pipelined connection
//	          carries one request and asks for "Connection: close").
//	churn     a connection per request: connect, the request with
//	          "Connection: close", its reply, close.
//	idle      connect and send nothing; hold the connection until the
//	          server closes it or FloodHold passes, then open another.
//	partial   connect and send an announce's request line and Host header
//	          but never the empty line that ends the header; held as idle.
//
// Requests are announces for random unknown info hashes. A request counts
// as sent once written whole during the measured part, and then once as
// answered (by the kind of reply) or not: the server closed the connection
// first, or Timeout passed. --flood-rate paces requests; idle and partial
// connections reopen as soon as they end.
//
// Where the connections come from matters for how heavy a flood one core
// can make: on loopback the connecting core does the kernel's work for
// both ends of a handshake, about 70-100 µs on the 2-core VM the numbers
// in bench/README.md come from, so one core opens some 10-15,000
// connections a second however the client is written, and heavier floods
// are pipelined.

const (
	floodBufSize  = 4 << 10 // a flood connection's read buffer: replies to the flood are short
	floodKeepBody = 512     // enough of a reply's body to tell its kind
)

type floodHTTP struct {
	rs    *runState
	pacer *floodPacer
	conns []*floodConn
	// tokens hands out the sends of a rate-limited flood, one per request,
	// so that a token wakes one connection instead of all of them; nil
	// without a limit.
	tokens chan struct{}
	missed uint64 // tokens no connection was free to take

	// canceled is set when the run's context is done, holdsOver when
	// sending stopped early: blocked reads are then cut short (all
	// connections, or those of idle and partial).
	canceled, holdsOver atomic.Bool

	// silentCloses counts pipelined connections that the server closed
	// after one reply that said it would keep them, leaving requests
	// unread; after oneShotAfter, oneShot is set and every pipelined
	// connection carries one request and asks for "Connection: close".
	// The server closes connections silently, and a pipelined request
	// on one would only be lost.
	silentCloses atomic.Int32
	oneShot      atomic.Bool

	modes [numHTTPModes]modeShared
}

// modeShared is what the connections of one mode record together.
type modeShared struct {
	conns int
	mu    sync.Mutex // guards the fields below
	lat   Histogram  // request written (churn: connect started) to reply
	held  Histogram  // idle, partial: connection made to the server's close
}

// modeStats counts what one connection did during the measured part (see
// HTTPModeReport).
type modeStats struct {
	connects, connectsOK, connectFailures, connectTimeouts uint64
	sent, replies, unanswered, timeouts                    uint64
	serverClosed, heldToEnd                                uint64
	said                                                   msgCounter
}

func (s *modeStats) merge(o *modeStats) {
	s.connects += o.connects
	s.connectsOK += o.connectsOK
	s.connectFailures += o.connectFailures
	s.connectTimeouts += o.connectTimeouts
	s.sent += o.sent
	s.replies += o.replies
	s.unanswered += o.unanswered
	s.timeouts += o.timeouts
	s.serverClosed += o.serverClosed
	s.heldToEnd += o.heldToEnd
	s.said.merge(&o.said)
}

// floodConn is one connection of the flood and its goroutine.
type floodConn struct {
	f     *floodHTTP
	mode  httpMode
	w     *httpWorker // dialing, buffers and request building
	st    modeStats
	stats floodStats // replies by kind, messages, socket errors

	// Pipelined requests in flight: their send times, oldest at head.
	ring           []int64
	head, inflight int
	persistent     bool // a reply on this connection kept it alive
	replied        int  // replies read on this connection

	mu   sync.Mutex // guards live, for interrupt
	live net.Conn
}

func newFloodHTTP(rs *runState, t httpTarget, srcs []netip.Addr, pacer *floodPacer) (*floodHTTP, error) {
	cfg := rs.cfg
	f := &floodHTTP{rs: rs, pacer: pacer}
	n := cfg.FloodConns
	if n == 0 {
		n = len(srcs)
	}
	if err := checkFiles(n); err != nil {
		return nil, err
	}
	modes := cfg.FloodMix.split(n)
	requests := 0
	laddrs := make([]*net.TCPAddr, len(srcs))
	for i, a := range srcs {
		laddrs[i] = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	for i, m := range modes {
		w := &httpWorker{
			id: i, run: rs, target: t, addr: t.addr.String(),
			rng:      rand.New(rand.NewPCG(uint64(i)+5000, uint64(time.Now().UnixNano()))),
			br:       bufio.NewReaderSize(nil, floodBufSize),
			keepBody: floodKeepBody,
			oneShot:  m == modeChurn, // asks for "Connection: close"
			timer:    time.NewTimer(time.Hour),
		}
		w.timer.Stop()
		w.dialer.Timeout = cfg.Timeout
		w.dialer.LocalAddr = laddrs[i%len(laddrs)]
		w.dialer.ControlContext = dialControl
		c := &floodConn{f: f, mode: m, w: w}
		if m == modePipeline {
			c.ring = make([]int64, cfg.FloodPipeline)
		}
		if m.sendsRequests() {
			requests++
		}
		f.modes[m].conns++
		f.conns = append(f.conns, c)
	}
	if pacer.perNs > 0 && requests > 0 {
		f.tokens = make(chan struct{}, requests*cfg.FloodPipeline)
	}
	if len(srcs) > 0 {
		// Bind before connecting, so a bad source is reported here, once.
		ln, err := net.ListenTCP("tcp", laddrs[0])
		if err != nil {
			return nil, fmt.Errorf("bind flood source %v: %w", srcs[0], err)
		}
		ln.Close()
	}
	return f, nil
}

func (f *floodHTTP) close() {}

func (f *floodHTTP) stats() *floodStats {
	total := new(floodStats)
	for _, c := range f.conns {
		total.merge(&c.stats)
		total.sent += c.st.sent
		total.connects += c.st.connects
		total.connectsOK += c.st.connectsOK
	}
	return total
}

// modeReports reports each mode that had connections, after run.
func (f *floodHTTP) modeReports(elapsed time.Duration) []HTTPModeReport {
	var st [numHTTPModes]modeStats
	for _, c := range f.conns {
		st[c.mode].merge(&c.st)
	}
	secs := elapsed.Seconds()
	per := func(n uint64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	var out []HTTPModeReport
	for m := range numHTTPModes {
		sh := &f.modes[m]
		if sh.conns == 0 {
			continue
		}
		s := &st[m]
		out = append(out, HTTPModeReport{
			Mode: m.String(), Conns: sh.conns,
			Connects: s.connects, ConnectsOK: s.connectsOK, ConnectFailures: s.connectFailures,
			ConnectTimeouts: s.connectTimeouts, ConnectsPerSec: per(s.connectsOK),
			Sent: s.sent, SentPerSec: per(s.sent), Replies: s.replies, RepliesPerSec: per(s.replies),
			Unanswered: s.unanswered, Timeouts: s.timeouts, ServerClosed: s.serverClosed,
			Latency: summarize(&sh.lat), Held: summarize(&sh.held), HeldToEnd: s.heldToEnd,
			ServerSaid: s.said.top(3),
		})
	}
	return out
}

func summarize(h *Histogram) LatencySummary {
	return LatencySummary{P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), Max: h.Max(), Mean: h.Mean()}
}

func (f *floodHTTP) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range f.conns {
		wg.Go(func() { c.loop(ctx) })
	}
	done := make(chan struct{})
	go f.watch(ctx, done)
	if f.tokens != nil {
		f.feed(ctx)
	}
	wg.Wait()
	close(done)
}

// watch cuts blocked reads short when they should end before their
// deadline: every connection's when ctx is done, held ones' when sending
// stops early (the request budget is spent).
func (f *floodHTTP) watch(ctx context.Context, done chan struct{}) {
	select {
	case <-ctx.Done():
		f.interrupt(true)
		return
	case <-f.rs.stopped:
		f.interrupt(false)
	case <-done:
		return
	}
	select {
	case <-ctx.Done():
		f.interrupt(true)
	case <-done:
	}
}

func (f *floodHTTP) interrupt(all bool) {
	if all {
		f.canceled.Store(true)
	} else {
		f.holdsOver.Store(true)
	}
	for _, c := range f.conns {
		if all || !c.mode.sendsRequests() {
			c.mu.Lock()
			if c.live != nil {
				_ = c.live.SetDeadline(pastDeadline)
			}
			c.mu.Unlock()
		}
	}
}

var pastDeadline = time.Unix(1, 0)

// feed puts the rate-limited flood's sends into f.tokens as they come due,
// until sending stops; then it closes f.tokens. A token finding the
// channel full is lost: every connection is busy, and the flood falls
// short of its rate (SentPerSec says by how much).
func (f *floodHTTP) feed(ctx context.Context) {
	defer close(f.tokens)
	rs := f.rs
	for {
		now := rs.now()
		if ctx.Err() != nil || now >= rs.stopSend || rs.stopAt.Load() != 0 {
			return
		}
		for n := f.pacer.take(now, cap(f.tokens)); n > 0; n-- {
			select {
			case f.tokens <- struct{}{}:
			default:
				f.missed++
			}
		}
		time.Sleep(f.pacer.pause(now))
	}
}

// take waits for the right to send up to n requests and returns how many
// it got: n without a rate limit, else what tokens there are, waiting for
// the first only if wait is set. It returns 0 when sending stops.
func (f *floodHTTP) take(ctx context.Context, n int, wait bool) int {
	if f.tokens == nil {
		return n
	}
	got := 0
	if wait {
		select {
		case _, ok := <-f.tokens:
			if !ok {
				return 0
			}
			got = 1
		case <-ctx.Done():
			return 0
		}
	}
	for got < n {
		select {
		case _, ok := <-f.tokens:
			if !ok {
				return got
			}
			got++
		default:
			return got
		}
	}
	return got
}

// sending reports whether connections may still send and connect.
func (c *floodConn) sending(ctx context.Context) bool {
	rs := c.f.rs
	return ctx.Err() == nil && rs.now() < rs.stopSend && rs.stopAt.Load() == 0
}

// loop runs the connection's mode until sending stops, then waits for the
// replies to its pipelined requests (each read bounded by Timeout) and
// closes it.
func (c *floodConn) loop(ctx context.Context) {
	defer c.closeConn()
	for c.sending(ctx) {
		switch c.mode {
		case modePipeline:
			c.pipeline(ctx)
		case modeChurn:
			c.churn(ctx)
		default:
			c.hold(ctx)
		}
	}
	if ctx.Err() != nil {
		c.f.rs.stopSending(c.f.rs.now(), stopCanceled)
		return
	}
	for c.live != nil && c.inflight > 0 {
		c.readReplies(true)
	}
}

// dial opens a connection from the worker's source; it reports false (and
// has waited dialBackoff) if none could be made.
func (c *floodConn) dial(ctx context.Context) bool {
	rs := c.f.rs
	now := rs.now()
	measured := now >= rs.warmupEnd
	if measured {
		c.st.connects++
	}
	conn, err := c.w.dialer.DialContext(ctx, "tcp", c.w.addr)
	if err != nil {
		if measured {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.st.connectTimeouts++
			} else {
				c.st.connectFailures++
				c.stats.ioError(err)
			}
		}
		c.w.sleep(ctx, min(rs.now()+int64(dialBackoff), rs.stopSend))
		return false
	}
	if measured {
		c.st.connectsOK++
	}
	c.mu.Lock()
	c.live = conn
	c.mu.Unlock()
	c.w.br.Reset(conn)
	c.head, c.inflight, c.persistent, c.replied = 0, 0, false, 0
	return true
}

func (c *floodConn) closeConn() {
	c.mu.Lock()
	if c.live != nil {
		c.live.Close()
		c.live = nil
	}
	c.mu.Unlock()
}

// setDeadline sets the connection's deadline to the run-relative time t,
// unless the run is being cut short (see interrupt).
func (c *floodConn) setDeadline(t int64) error {
	err := c.live.SetDeadline(c.f.rs.base.Add(time.Duration(t)))
	if c.f.canceled.Load() || !c.mode.sendsRequests() && c.f.holdsOver.Load() {
		err = c.live.SetDeadline(pastDeadline)
	}
	return err
}

// pipeline makes one step of a pipelined connection: connect if needed,
// top up the requests in flight (one until the server has shown it keeps
// the connection), then read the replies that are there, waiting only if
// nothing could be sent.
func (c *floodConn) pipeline(ctx context.Context) {
	rs := c.f.rs
	if c.live == nil && !c.dial(ctx) {
		return
	}
	if !c.w.oneShot && c.f.oneShot.Load() {
		c.w.oneShot = true // from the next request on: see silentCloses
	}
	room := 1 - c.inflight
	if c.persistent && !c.w.oneShot {
		room = len(c.ring) - c.inflight
	}
	if room > 0 {
		n := c.f.take(ctx, room, c.inflight == 0)
		if n > 0 {
			n = rs.reserve(n, rs.now())
		}
		if n > 0 && !c.send(n) {
			return
		}
	}
	if c.inflight > 0 {
		c.readReplies(false)
	}
}

// send writes n announces on the open connection.
func (c *floodConn) send(n int) bool {
	rs := c.f.rs
	w := c.w
	b := w.req[:0]
	for range n {
		b = c.appendAnnounce(b)
		b = w.appendRequestEnd(b)
	}
	w.req = b
	now := rs.now()
	if c.inflight == 0 {
		if err := c.setDeadline(now + rs.timeout); err != nil {
			c.stats.ioError(err)
			c.closeConn()
			return false
		}
	}
	if _, err := c.live.Write(w.req); err != nil {
		c.lost(err, rs.now())
		return false
	}
	measured := now >= rs.warmupEnd
	for range n {
		c.ring[(c.head+c.inflight)%len(c.ring)] = now
		c.inflight++
	}
	if measured {
		c.st.sent += uint64(n)
	}
	return true
}

// appendAnnounce appends the request line of an announce for a random
// info hash by a random peer, up to the end of its query.
func (c *floodConn) appendAnnounce(b []byte) []byte {
	w := c.w
	a := httpAnnounce{left: 1 << 30, numWant: w.run.cfg.NumWant, started: true}
	randomHash(w.rng, &a.infoHash)
	copy(a.peerID[:], floodPeerID)
	r := w.rng.Uint64()
	for i := len(floodPeerID); i < len(a.peerID); i++ {
		a.peerID[i] = 'a' + byte(r%26)
		r /= 26
	}
	a.port = uint16(r) | 1024
	a.key = uint32(r >> 16)
	return appendHTTPAnnounce(b, w.target.announcePrefix, &a)
}

// readReplies reads the replies to the pipelined requests in flight, each
// within Timeout of its request's write. Unless draining, it returns as
// soon as no more are buffered, so that the caller tops up first.
func (c *floodConn) readReplies(drain bool) {
	rs := c.f.rs
	for c.inflight > 0 {
		sentAt := c.ring[c.head]
		if err := c.setDeadline(sentAt + rs.timeout); err != nil {
			c.stats.ioError(err)
			c.closeConn()
			return
		}
		status, keep, err := c.w.readResponse()
		now := rs.now()
		if err != nil {
			c.lost(err, now)
			return
		}
		c.head = (c.head + 1) % len(c.ring)
		c.inflight--
		c.replied++
		if sentAt >= rs.warmupEnd {
			c.answered(status, now-sentAt)
		}
		if c.w.oneShot { // asked for "Connection: close"
			c.closeConn()
			return
		}
		if !keep {
			c.serverClosed(now)
			c.closeConn()
			return
		}
		c.persistent = true
		if !drain && c.w.br.Buffered() == 0 {
			return
		}
	}
}

// answered counts the reply to a measured request, after lat.
func (c *floodConn) answered(status int, lat int64) {
	c.st.replies++
	c.stats.httpReply(status, c.w.body)
	sh := &c.f.modes[c.mode]
	sh.mu.Lock()
	sh.lat.Record(time.Duration(lat))
	sh.mu.Unlock()
}

// serverClosed counts the server's end of the connection at now, and the
// measured requests it left unanswered.
func (c *floodConn) serverClosed(now int64) {
	rs := c.f.rs
	if now >= rs.warmupEnd {
		c.st.serverClosed++
	}
	c.st.unanswered += c.measuredInFlight()
	c.inflight = 0
}

// measuredInFlight returns how many requests in flight were sent during
// the measured part.
func (c *floodConn) measuredInFlight() uint64 {
	n := uint64(0)
	for i := range c.inflight {
		if c.ring[(c.head+i)%len(c.ring)] >= c.f.rs.warmupEnd {
			n++
		}
	}
	return n
}

// lost ends the connection after err, counting what was in flight: timed
// out, unanswered because the server closed the connection, or, for a
// malformed reply, that reply as "other" and the rest unanswered.
func (c *floodConn) lost(err error, now int64) {
	var ne net.Error
	var he errHTTP
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.st.timeouts += c.measuredInFlight()
		c.inflight = 0
	case errors.As(err, &he):
		if c.inflight > 0 && c.ring[c.head] >= c.f.rs.warmupEnd {
			c.st.replies++
			c.stats.message([]byte(he), kindOther)
			c.head = (c.head + 1) % len(c.ring)
			c.inflight--
		}
		c.st.unanswered += c.measuredInFlight()
		c.inflight = 0
	case closedByPeer(err):
		if c.mode == modePipeline && c.replied == 1 && c.inflight > 0 && !c.w.oneShot {
			if c.f.silentCloses.Add(1) >= oneShotAfter {
				c.f.oneShot.Store(true)
			}
		}
		c.serverClosed(now)
	default:
		if now >= c.f.rs.warmupEnd {
			c.stats.ioError(err)
		}
		c.st.unanswered += c.measuredInFlight()
		c.inflight = 0
	}
	c.closeConn()
}

// closedByPeer reports whether err means that the other end closed or
// reset the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, errNoReply) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// churn makes one request on a connection of its own: connect, request
// with "Connection: close", reply, close. Its latency runs from the start
// of the connect.
func (c *floodConn) churn(ctx context.Context) {
	rs := c.f.rs
	if c.f.take(ctx, 1, true) == 0 {
		return
	}
	start := rs.now()
	if !c.dial(ctx) {
		return
	}
	defer c.closeConn()
	if rs.reserve(1, rs.now()) == 0 {
		return
	}
	w := c.w
	w.req = w.appendRequestEnd(c.appendAnnounce(w.req[:0]))
	now := rs.now()
	if err := c.setDeadline(now + rs.timeout); err != nil {
		c.stats.ioError(err)
		return
	}
	measured := now >= rs.warmupEnd
	if _, err := c.live.Write(w.req); err != nil {
		if measured && closedByPeer(err) {
			c.st.serverClosed++
		} else if measured {
			c.stats.ioError(err)
		}
		return
	}
	if measured {
		c.st.sent++
	}
	status, _, err := w.readResponse()
	done := rs.now()
	if !measured {
		return
	}
	var ne net.Error
	var he errHTTP
	switch {
	case err == nil:
		c.answered(status, done-start)
	case errors.As(err, &ne) && ne.Timeout():
		c.st.timeouts++
	case errors.As(err, &he):
		c.st.replies++
		c.stats.message([]byte(he), kindOther)
	case closedByPeer(err):
		c.st.serverClosed++
		c.st.unanswered++
	default:
		c.stats.ioError(err)
		c.st.unanswered++
	}
}

// hold opens an idle or partial connection and keeps it until the server
// closes it, FloodHold passes or sending stops.
func (c *floodConn) hold(ctx context.Context) {
	rs := c.f.rs
	if !c.dial(ctx) {
		return
	}
	defer c.closeConn()
	made := rs.now()
	measured := made >= rs.warmupEnd
	end := rs.stopSend
	if h := int64(rs.cfg.FloodHold); h > 0 {
		end = min(end, made+h)
	}
	if err := c.setDeadline(end); err != nil {
		c.stats.ioError(err)
		return
	}
	if c.mode == modePartial {
		w := c.w
		b := c.appendAnnounce(w.req[:0])
		b = append(b, " HTTP/1.1\r\nHost: "...)
		b = append(b, w.target.host...)
		w.req = append(b, "\r\n"...)
		if _, err := c.live.Write(w.req); err != nil {
			c.heldUntil(measured, made, rs.now(), err)
			return
		}
	}
	// Whatever the server says (an error status, at best) is noted by its
	// status line and dropped; the connection is held until it ends.
	first := true
	for {
		line, err := c.w.br.ReadSlice('\n')
		if first && len(line) > 0 && measured {
			first = false
			if s, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("HTTP/")); ok && len(s) > 4 {
				c.st.said.add(s[4:]) // "1.1 408 Request Timeout" less the version
			} else {
				c.st.said.add([]byte("(not a status line)"))
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			c.heldUntil(measured, made, rs.now(), err)
			return
		}
	}
}

// heldUntil counts the end of a held connection made at made, ended at now
// by err: the server's close, or the deadline.
func (c *floodConn) heldUntil(measured bool, made, now int64, err error) {
	if !measured {
		return
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.st.heldToEnd++
	case closedByPeer(err):
		c.st.serverClosed++
		sh := &c.f.modes[c.mode]
		sh.mu.Lock()
		sh.held.Record(time.Duration(now - made))
		sh.mu.Unlock()
	default:
		c.stats.ioError(err)
	}
}

var failurePrefix = []byte("d14:failure reason")

// httpReply counts one reply to the flood.
func (s *floodStats) httpReply(status int, body []byte) {
	if status != 200 {
		var b [24]byte
		s.message(strconv.AppendInt(append(b[:0], "http status "...), int64(status), 10), kindOther)
		return
	}
	if rest, ok := bytes.CutPrefix(body, failurePrefix); ok {
		// <length>:<reason>
		if i := bytes.IndexByte(rest, ':'); i > 0 {
			if n, ok := parseDecimal(rest[:i], uint64(len(rest))); ok && i+1+int(n) <= len(rest) {
				s.refusal(rest[i+1 : i+1+int(n)])
				return
			}
		}
	}
	if bytes.Contains(body, failurePrefix[1:]) {
		// Not the first key, or not as expected: decode it properly.
		if failure, _, ok := checkHTTPAnnounce(body, -1); ok && failure != "" {
			s.refusal([]byte(failure))
			return
		}
		s.message([]byte("malformed failure reason"), kindOther)
		return
	}
	if bytes.HasPrefix(body, []byte("d")) && bytes.Contains(body, []byte("8:interval")) {
		s.kinds[kindAnnounce]++
		return
	}
	s.message([]byte("not an announce reply"), kindOther)
}

// checkFiles returns an error if n more connections would not fit under
// the process's limit on open files.
func checkFiles(n int) error {
	limit, ok := fileLimit()
	if !ok || uint64(n)+64 <= limit {
		return nil
	}
	return fmt.Errorf("%d flood connections need more open files than the limit of %d (ulimit -n): %w", n, limit, os.ErrInvalid)
}
