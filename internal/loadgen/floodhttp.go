package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The HTTP flood: one connection per flood source, each with its own
// goroutine, writing floodPipeline announces at once (HTTP/1.1 pipelining)
// and then reading their replies. A server that closes the connection
// after each reply gets one request per connection instead.

const floodPipeline = 16

type floodHTTP struct {
	rs    *runState
	pacer *floodPacer
	conns []*floodHTTPConn
	// tokens hands out the sends of a rate-limited flood, one per request,
	// so that a token wakes one connection instead of all of them; nil
	// without a limit.
	tokens chan struct{}
	missed uint64 // tokens no connection was free to take
}

type floodHTTPConn struct {
	w      *httpWorker // the connection, its buffers and dialing
	pacer  *floodPacer
	tokens chan struct{}
	stats  floodStats
}

func newFloodHTTP(rs *runState, t httpTarget, srcs []netip.Addr, pacer *floodPacer) (*floodHTTP, error) {
	cfg := rs.cfg
	f := &floodHTTP{rs: rs, pacer: pacer}
	if pacer.perNs > 0 {
		f.tokens = make(chan struct{}, len(srcs)*floodPipeline)
	}
	for i, a := range srcs {
		w := &httpWorker{
			id: i, run: rs, target: t, addr: t.addr.String(),
			rng:   rand.New(rand.NewPCG(uint64(i)+5000, uint64(time.Now().UnixNano()))),
			br:    bufio.NewReaderSize(nil, httpBufSize),
			timer: time.NewTimer(time.Hour),
		}
		w.timer.Stop()
		w.dialer.Timeout = cfg.Timeout
		w.dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
		f.conns = append(f.conns, &floodHTTPConn{w: w, pacer: pacer, tokens: f.tokens})
	}
	if len(srcs) > 0 {
		ln, err := net.ListenTCP("tcp", f.conns[0].w.dialer.LocalAddr.(*net.TCPAddr))
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
		st := &c.w.stats.classes[classConnect]
		c.stats.connects += c.w.warmStats.classes[classConnect].sent + st.sent
		c.stats.connectsOK += c.w.warmStats.classes[classConnect].ok + st.ok
		total.merge(&c.stats)
	}
	return total
}

func (f *floodHTTP) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range f.conns {
		wg.Go(func() { c.loop(ctx) })
	}
	if f.tokens != nil {
		f.feed(ctx)
	}
	wg.Wait()
}

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

// loop floods from one source until sending stops. Each batch is bounded
// by Timeout, so it returns within Timeout after that.
func (c *floodHTTPConn) loop(ctx context.Context) {
	w := c.w
	rs := w.run
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	carry := 0 // requests taken but not sent: the connection had been closed
	for {
		now := rs.now()
		if ctx.Err() != nil {
			rs.stopSending(now, stopCanceled)
			return
		}
		if now >= rs.stopSend || rs.stopAt.Load() != 0 {
			return
		}
		if w.conn == nil && !w.dial(ctx, now) {
			w.sleep(ctx, min(rs.now()+int64(dialBackoff), rs.stopSend))
			continue
		}
		n := carry
		if n == 0 {
			n = floodPipeline
			if w.oneShot {
				n = 1
			}
			if n = c.take(ctx, n); n == 0 {
				return
			}
			if n = rs.reserve(n, rs.now()); n == 0 {
				return
			}
		}
		carry = c.batch(n, rs.now()) // on a new connection
	}
}

// take waits for the right to send up to n requests and returns how many
// it got: n without a rate limit, else at least one token and what else
// is there. It returns 0 when sending stops.
func (c *floodHTTPConn) take(ctx context.Context, n int) int {
	if c.tokens == nil {
		return n
	}
	select {
	case _, ok := <-c.tokens:
		if !ok {
			return 0
		}
	case <-ctx.Done():
		return 0
	}
	got := 1
	for got < n {
		select {
		case _, ok := <-c.tokens:
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

// batch writes n announces for random info hashes on the open connection
// and reads their replies. It returns how many of them the server did not
// read because it had closed the kept-alive connection: they were not
// sent, and may go on a new connection.
func (c *floodHTTPConn) batch(n int, now int64) int {
	w := c.w
	rs := w.run
	measured := now >= rs.warmupEnd
	b := w.req[:0]
	for range n {
		a := httpAnnounce{left: 1 << 30, numWant: rs.cfg.NumWant, started: true}
		randomHash(w.rng, &a.infoHash)
		copy(a.peerID[:], floodPeerID)
		r := w.rng.Uint64()
		for i := len(floodPeerID); i < len(a.peerID); i++ {
			a.peerID[i] = 'a' + byte(r%26)
			r /= 26
		}
		a.port = uint16(r) | 1024
		a.key = uint32(r >> 16)
		b = w.appendRequestEnd(appendHTTPAnnounce(b, w.target.announcePrefix, &a))
	}
	w.req = b
	if err := w.conn.SetDeadline(rs.base.Add(time.Duration(now + rs.timeout))); err != nil {
		c.stats.ioError(err)
		w.closeConn()
		return 0
	}
	if _, err := w.conn.Write(w.req); err != nil {
		w.closeConn()
		if w.closedIdle(err) {
			c.sawClosedIdle()
			return n
		}
		c.stats.sendErrors++
		c.stats.ioError(err)
		return 0
	}
	if measured {
		c.stats.sent += uint64(n)
	}
	for i := range n {
		status, keep, err := w.readResponse()
		if err != nil {
			if w.closedIdle(err) {
				// The server closed the connection after its last
				// reply, without saying so, before it read these
				// requests: they were not sent, and go on a new one.
				w.closeConn()
				c.sawClosedIdle()
				if measured {
					c.stats.sent -= uint64(n - i)
				}
				return n - i
			}
			if measured {
				c.stats.ioError(err)
			}
			w.closeConn()
			return 0 // the rest got no reply
		}
		if w.used++; w.used > 1 {
			w.closedInRow = 0
		}
		if measured {
			c.classify(status, w.body)
		}
		if !keep {
			w.closeConn()
			if i+1 < n {
				w.oneShot = true // the server answers one request per connection
			}
			return 0 // the rest got no reply
		}
	}
	if w.oneShot {
		w.closeConn()
	}
	return 0
}

// sawClosedIdle notes a kept-alive connection found closed by the server,
// which closes it after each reply without saying so; after a few in a
// row, the connection asks for "Connection: close" and carries one
// request.
func (c *floodHTTPConn) sawClosedIdle() {
	if c.w.closedInRow++; c.w.closedInRow >= oneShotAfter {
		c.w.oneShot = true
	}
}

var failurePrefix = []byte("d14:failure reason")

// classify counts one reply to the flood.
func (c *floodHTTPConn) classify(status int, body []byte) {
	if status != 200 {
		c.stats.message(strconv.AppendInt([]byte("http status "), int64(status), 10), kindOther)
		return
	}
	if rest, ok := bytes.CutPrefix(body, failurePrefix); ok {
		// <length>:<reason>
		if i := bytes.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(string(rest[:i])); err == nil && n >= 0 && i+1+n <= len(rest) {
				c.stats.refusal(rest[i+1 : i+1+n])
				return
			}
		}
	}
	if bytes.Contains(body, failurePrefix[1:]) {
		// Not the first key, or not as expected: decode it properly.
		if failure, _, ok := checkHTTPAnnounce(body, -1); ok && failure != "" {
			c.stats.refusal([]byte(failure))
			return
		}
		c.stats.message([]byte("malformed failure reason"), kindOther)
		return
	}
	if bytes.HasPrefix(body, []byte("d")) && bytes.Contains(body, []byte("8:interval")) {
		c.stats.kinds[kindAnnounce]++
		return
	}
	c.stats.message([]byte("not an announce reply"), kindOther)
}
