package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
)

// The legit class of the flood scenario: one join every 1/LegitRate
// seconds, on a schedule fixed in advance (join k is due at k/LegitRate),
// each from the next of the legit sources in turn. The schedule does not
// wait for replies, so a slow tracker does not slow it down; a join's
// latency runs from when the pacer started it, and the pacer's own lag
// behind the schedule is reported apart.

const (
	legitConnSlot   = 255 // slot number of a connect in a transaction ID
	maxLegitSlots   = 255 // announces in flight per source, and joins waiting for a connect
	legitGenMask    = 1<<24 - 1
	legitDrainEvery = int64(10 * time.Millisecond)
)

// legitUDP is the legit class over UDP. Every source has its own socket,
// read by its own goroutine, and its own connection ID. One goroutine,
// the pacer, starts the joins and times out the requests; one mutex
// guards everything, since the class is slow (a few thousand requests a
// second) and the flood does not touch it.
type legitUDP struct {
	rs       *runState
	hashes   []bittorrent.InfoHash
	period   float64 // nanoseconds between joins
	ipv6     bool
	maxReply int
	srcs     []*legitSource
	readers  sync.WaitGroup

	mu       sync.Mutex     // guards the fields below and the sources' state
	queue    []legitPending // requests in flight, in the order sent, so of their deadlines
	inflight int
	closed   bool
	res      legitResult // measured
	warm     legitResult // during the warm-up, not reported
	pkt      []byte
}

// legitSource is one legit source address: its socket and connection ID,
// and its requests in flight. A transaction ID is gen<<8 | slot.
type legitSource struct {
	id   int32
	conn *net.UDPConn

	hasConn bool
	connID  uint64
	connAt  int64

	connBusy     bool
	connMeasured bool
	connGen      uint32
	connSentAt   int64
	connLateGen  uint32 // the last connect that timed out, to tell a late reply
	connLate     bool
	waiting      []legitJoin // joins waiting for the connection ID

	slots []legitSlot
	free  []uint8
	gen   uint32
	peers uint32 // joins started from this source, for their ports
}

type legitSlot struct {
	busy     bool
	late     bool // lateGen timed out
	gen      uint32
	lateGen  uint32
	sentAt   int64
	join     legitJoin
	measured bool
}

type legitPending struct {
	src      int32
	slot     uint8
	gen      uint32
	deadline int64
}

func newLegitUDP(rs *runState, target netip.AddrPort, srcs []netip.Addr) (*legitUDP, error) {
	cfg := rs.cfg
	l := &legitUDP{
		rs: rs, hashes: rs.pop.hashes, period: 1e9 / cfg.LegitRate,
		ipv6: target.Addr().Is6(),
	}
	peerLen, numWant := bittorrent.CompactLen4, cfg.NumWant
	if l.ipv6 {
		peerLen = bittorrent.CompactLen6
	}
	if numWant < 0 {
		numWant = defaultNumWant
	}
	l.maxReply = max(bep15.AnnounceReplyLen+peerLen*numWant, maxErrorReply)
	// Room for twice the joins of a source within Timeout, as the pacer
	// times requests out a little late; as many joins may wait for a
	// connect.
	perSource := cfg.Timeout.Seconds() * cfg.LegitRate / float64(len(srcs))
	nslots := min(maxLegitSlots, int(2*perSource)+8)
	conns, err := dialSources(target, srcs, "legit")
	if err != nil {
		return nil, err
	}
	for i, c := range conns {
		s := &legitSource{id: int32(i), conn: c, slots: make([]legitSlot, nslots)}
		for j := nslots - 1; j >= 0; j-- {
			s.free = append(s.free, uint8(j))
		}
		l.srcs = append(l.srcs, s)
	}
	return l, nil
}

func (l *legitUDP) close() {
	for _, s := range l.srcs {
		s.conn.Close()
	}
}

func (l *legitUDP) result() *legitResult { return &l.res }

func (l *legitUDP) resultFor(measured bool) *legitResult {
	if measured {
		return &l.res
	}
	return &l.warm
}

func (l *legitUDP) joinsFor(j legitJoin) *joinStats {
	return &l.resultFor(j.due >= l.rs.warmupEnd).joins
}

func (l *legitUDP) statsFor(measured bool, c class) *classStats {
	return &l.resultFor(measured).stats.classes[c]
}

func (l *legitUDP) run(ctx context.Context) {
	rs := l.rs
	for _, s := range l.srcs {
		l.readers.Go(func() { l.read(s) })
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var k int64
	canceled := false
	for {
		now := rs.now()
		if ctx.Err() != nil {
			rs.stopSending(now, stopCanceled)
			canceled = true
			break
		}
		if rs.stopAt.Load() != 0 {
			break
		}
		// Every join due by now, and before the end even if the pacer
		// woke up late.
		l.mu.Lock()
		for {
			due := int64(float64(k) * l.period)
			if due > now || due >= rs.stopSend || rs.reserve(1, now) == 0 {
				break
			}
			l.startJoin(legitJoin{k: k, due: due, start: now}, now)
			k++
		}
		l.expire(now)
		l.mu.Unlock()
		if now >= rs.stopSend {
			break
		}
		next := min(int64(float64(k)*l.period), rs.stopSend, now+maxWait)
		sleepUntil(ctx, rs, timer, next)
	}
	// Wait for the replies in flight, at most Timeout after sending stopped.
	end := rs.now() + rs.timeout + legitDrainEvery
	for !canceled {
		now := rs.now()
		l.mu.Lock()
		l.expire(now)
		n := l.inflight
		l.mu.Unlock()
		if n == 0 || now > end {
			break
		}
		canceled = !sleepUntil(ctx, rs, timer, min(now+legitDrainEvery, end+1))
	}
	l.mu.Lock()
	if !canceled {
		l.expire(never)
	}
	l.closed = true
	l.mu.Unlock()
	l.close()
	l.readers.Wait()
}

// read reads the replies of source s until its socket is closed.
func (l *legitUDP) read(s *legitSource) {
	buf := make([]byte, l.maxReply+1)
	for {
		n, err := s.conn.Read(buf)
		now := l.rs.now()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		if err != nil {
			// ECONNREFUSED and the like; the socket lives on.
			l.res.stats.ioError(err)
			l.mu.Unlock()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.handle(s, buf[:n], now)
		l.mu.Unlock()
	}
}

// startJoin starts join j at now: an announce if its source has a
// connection ID young enough, else a connect first. l.mu is held.
func (l *legitUDP) startJoin(j legitJoin, now int64) {
	s := l.srcs[j.k%int64(len(l.srcs))]
	r := l.resultFor(j.due >= l.rs.warmupEnd)
	r.joins.due++
	r.lag.Record(time.Duration(now - j.due))
	if s.hasConn && now-s.connAt < connIDRefresh {
		l.sendAnnounce(s, j, now)
		return
	}
	if len(s.waiting) >= len(s.slots) {
		r.joins.notSent++
		return
	}
	s.waiting = append(s.waiting, j)
	if !s.connBusy {
		l.sendConnect(s, now)
	}
}

func (l *legitUDP) nextGen(s *legitSource) uint32 {
	s.gen = (s.gen + 1) & legitGenMask
	return s.gen
}

// sendConnect sends a connect for s. l.mu is held.
func (l *legitUDP) sendConnect(s *legitSource, now int64) {
	gen := l.nextGen(s)
	l.pkt = bep15.AppendConnect(l.pkt[:0], gen<<8|legitConnSlot)
	if _, err := s.conn.Write(l.pkt); err != nil {
		l.res.stats.ioError(err)
		for _, j := range s.waiting {
			l.joinsFor(j).notSent++
		}
		s.waiting = s.waiting[:0]
		return
	}
	measured := now >= l.rs.warmupEnd
	l.statsFor(measured, classConnect).sent++
	s.connBusy, s.connGen, s.connSentAt, s.connMeasured = true, gen, now, measured
	l.inflight++
	l.queue = append(l.queue, legitPending{src: s.id, slot: legitConnSlot, gen: gen, deadline: now + l.rs.timeout})
}

// sendAnnounce sends join j's announce from s. l.mu is held.
func (l *legitUDP) sendAnnounce(s *legitSource, j legitJoin, now int64) {
	if len(s.free) == 0 {
		l.joinsFor(j).notSent++
		return
	}
	idx := s.free[len(s.free)-1]
	gen := l.nextGen(s)
	ih, sp := joinPeer(l.hashes, j.k, joinPort(s.peers))
	s.peers++
	a := bep15.Announce{
		InfoHash: ih, PeerID: sp.id, Left: sp.left, Event: uint32(bittorrent.EventStarted),
		Key: sp.key, NumWant: int32(l.rs.cfg.NumWant), Port: sp.port,
	}
	l.pkt = bep15.AppendAnnounce(l.pkt[:0], s.connID, gen<<8|uint32(idx), &a)
	if _, err := s.conn.Write(l.pkt); err != nil {
		l.res.stats.ioError(err)
		l.joinsFor(j).notSent++
		return
	}
	s.free = s.free[:len(s.free)-1]
	measured := now >= l.rs.warmupEnd
	l.statsFor(measured, classAnnounceLegit).sent++
	sl := &s.slots[idx]
	sl.busy, sl.gen, sl.sentAt, sl.join, sl.measured = true, gen, now, j, measured
	l.inflight++
	l.queue = append(l.queue, legitPending{src: s.id, slot: idx, gen: gen, deadline: now + l.rs.timeout})
}

// failWaiting ends the joins waiting for s's connect.
func (l *legitUDP) failWaiting(s *legitSource, out outcome, msg []byte, now int64) {
	for _, j := range s.waiting {
		js := l.joinsFor(j)
		switch out {
		case outcomeFailure:
			js.failed(msg, now-j.start)
		case outcomeTimeout:
			js.timeouts++
		default:
			js.bad++
		}
	}
	s.waiting = s.waiting[:0]
}

// handle checks a reply to source s, received at now. l.mu is held.
func (l *legitUDP) handle(s *legitSource, b []byte, now int64) {
	action, txid, ok := bep15.ParseReplyHeader(b)
	if !ok {
		l.res.stats.unmatched[badShort]++
		return
	}
	slot, gen := txid&0xff, txid>>8
	if slot == legitConnSlot {
		l.handleConnect(s, b, action, gen, now)
		return
	}
	if int(slot) >= len(s.slots) {
		l.res.stats.unmatched[badTxID]++
		return
	}
	sl := &s.slots[slot]
	if !sl.busy || sl.gen != gen {
		if sl.late && sl.lateGen == gen {
			sl.late = false
			l.statsFor(sl.measured, classAnnounceLegit).late++
			return
		}
		l.res.stats.unmatched[badTxID]++
		return
	}
	sl.busy = false
	s.free = append(s.free, uint8(slot))
	l.inflight--
	st := l.statsFor(sl.measured, classAnnounceLegit)
	js := l.joinsFor(sl.join)
	lat := now - sl.sentAt
	switch {
	case lat > l.rs.timeout:
		st.timeouts++
		st.late++
		js.timeouts++
	case len(b) > l.maxReply:
		st.badReply(badTruncated)
		js.bad++
	case action == bep15.ActionError:
		msg := bep15.ErrorMessage(b)
		st.failures++
		st.failMsgs.add(msg)
		st.latency(time.Duration(lat))
		js.failed(msg, now-sl.join.start)
		s.hasConn = false // perhaps the tracker forgot the ID: get a new one
	default:
		if _, f := bep15.CheckAnnounce(b, l.ipv6, int32(l.rs.cfg.NumWant)); f != bep15.NoFault {
			st.badReply(badFor(f))
			js.bad++
			return
		}
		st.ok++
		st.latency(time.Duration(lat))
		js.succeeded(now - sl.join.start)
	}
}

func (l *legitUDP) handleConnect(s *legitSource, b []byte, action, gen uint32, now int64) {
	if !s.connBusy || s.connGen != gen {
		if s.connLate && s.connLateGen == gen {
			s.connLate = false
			l.statsFor(s.connMeasured, classConnect).late++
			return
		}
		l.res.stats.unmatched[badTxID]++
		return
	}
	s.connBusy = false
	l.inflight--
	st := l.statsFor(s.connMeasured, classConnect)
	lat := now - s.connSentAt
	switch {
	case lat > l.rs.timeout:
		st.timeouts++
		st.late++
		l.failWaiting(s, outcomeTimeout, nil, now)
		return
	case len(b) > l.maxReply:
		st.badReply(badTruncated)
		l.failWaiting(s, outcomeBad, nil, now)
		return
	case action == bep15.ActionError:
		msg := bep15.ErrorMessage(b)
		st.failures++
		st.failMsgs.add(msg)
		st.latency(time.Duration(lat))
		l.failWaiting(s, outcomeFailure, msg, now)
		return
	}
	id, f := bep15.CheckConnect(b)
	if f != bep15.NoFault {
		st.badReply(badFor(f))
		l.failWaiting(s, outcomeBad, nil, now)
		return
	}
	st.ok++
	st.latency(time.Duration(lat))
	s.hasConn, s.connID, s.connAt = true, id, now
	for _, j := range s.waiting {
		l.sendAnnounce(s, j, now)
	}
	s.waiting = s.waiting[:0]
}

// expire counts the requests sent before now-Timeout and still
// unanswered as timed out. l.mu is held.
func (l *legitUDP) expire(now int64) {
	i := 0
	for ; i < len(l.queue) && l.queue[i].deadline < now; i++ {
		p := l.queue[i]
		s := l.srcs[p.src]
		if p.slot == legitConnSlot {
			if s.connBusy && s.connGen == p.gen {
				s.connBusy = false
				s.connLate, s.connLateGen = true, p.gen
				l.inflight--
				l.statsFor(s.connMeasured, classConnect).timeouts++
				l.failWaiting(s, outcomeTimeout, nil, now)
			}
			continue
		}
		sl := &s.slots[p.slot]
		if sl.busy && sl.gen == p.gen {
			sl.busy = false
			sl.late, sl.lateGen = true, p.gen
			s.free = append(s.free, p.slot)
			l.inflight--
			l.statsFor(sl.measured, classAnnounceLegit).timeouts++
			l.joinsFor(sl.join).timeouts++
		}
	}
	l.queue = l.queue[i:]
	if len(l.queue) == 0 {
		l.queue = l.queue[:0:0] // let the array go
	}
}

// legitHTTP is the legit class over HTTP: every source keeps one
// connection alive, served by its own goroutine, which the pacer hands the
// source's joins through a small queue. With LegitNewConn every join has a
// connection of its own instead, made by a goroutine started when the join
// is due.
type legitHTTP struct {
	rs      *runState
	target  httpTarget
	hashes  []bittorrent.InfoHash
	period  float64
	workers []*httpWorker
	queues  []chan legitJoin
	wg      sync.WaitGroup

	// With LegitNewConn: the sources' addresses, and the workers not in
	// use (at most maxJoins of them exist, so as many joins run at once).
	newConn  bool
	laddrs   []*net.TCPAddr
	idle     chan *httpWorker
	maxJoins int

	mu   sync.Mutex // guards the fields below
	res  legitResult
	warm legitResult
}

// legitHTTPQueue is how many joins of one source may wait while it is
// busy; more count as not sent.
const legitHTTPQueue = 16

// maxLegitJoins bounds the joins in flight with LegitNewConn.
const maxLegitJoins = 8192

func newLegitHTTP(rs *runState, t httpTarget, srcs []netip.Addr) (*legitHTTP, error) {
	cfg := rs.cfg
	l := &legitHTTP{rs: rs, target: t, hashes: rs.pop.hashes, period: 1e9 / cfg.LegitRate, newConn: cfg.LegitNewConn}
	for _, a := range srcs {
		l.laddrs = append(l.laddrs, net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	}
	if l.newConn {
		// A join takes at most two Timeouts (connect, then reply): room
		// for the joins of that long and a margin, so that none waits
		// for a worker while the tracker answers within Timeout.
		l.maxJoins = min(maxLegitJoins, int(2.5*cfg.LegitRate*cfg.Timeout.Seconds())+16)
		l.idle = make(chan *httpWorker, l.maxJoins)
	} else {
		for i, a := range l.laddrs {
			l.workers = append(l.workers, l.newWorker(i, a))
			l.queues = append(l.queues, make(chan legitJoin, legitHTTPQueue))
		}
	}
	if len(srcs) > 0 {
		// Bind before connecting, so a bad source is reported here, once.
		ln, err := net.ListenTCP("tcp", l.laddrs[0])
		if err != nil {
			return nil, fmt.Errorf("bind legit source %v: %w", srcs[0], err)
		}
		ln.Close()
	}
	return l, nil
}

func (l *legitHTTP) newWorker(i int, laddr *net.TCPAddr) *httpWorker {
	w := &httpWorker{
		id: i, run: l.rs, target: l.target, addr: l.target.addr.String(),
		rng: rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano()))),
		br:  bufio.NewReaderSize(nil, httpBufSize),
		// A connection per join asks the server to close it after the
		// reply, as one-shot clients do.
		oneShot: l.newConn,
	}
	w.dialer.Timeout = l.rs.cfg.Timeout
	w.dialer.LocalAddr = laddr
	w.dialer.ControlContext = dialControl
	return w
}
func (l *legitHTTP) close() {}

func (l *legitHTTP) result() *legitResult {
	for _, w := range l.workers {
		l.res.stats.merge(&w.stats)
	}
	return &l.res
}

func (l *legitHTTP) resultFor(j legitJoin) *legitResult {
	if j.due >= l.rs.warmupEnd {
		return &l.res
	}
	return &l.warm
}

// run paces the joins until sending stops and waits for them to end.
func (l *legitHTTP) run(ctx context.Context) {
	rs := l.rs
	for i, w := range l.workers {
		l.wg.Go(func() { l.serve(ctx, w, l.queues[i]) })
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var k int64
	for {
		now := rs.now()
		if ctx.Err() != nil {
			rs.stopSending(now, stopCanceled)
			break
		}
		if rs.stopAt.Load() != 0 {
			break
		}
		for {
			due := int64(float64(k) * l.period)
			if due > now || due >= rs.stopSend || rs.reserve(1, now) == 0 {
				break
			}
			j := legitJoin{k: k, due: due, start: now}
			l.mu.Lock()
			l.resultFor(j).joins.due++
			l.mu.Unlock()
			if l.newConn {
				l.startJoin(ctx, j)
			} else {
				l.enqueue(j, now)
			}
			k++
		}
		if now >= rs.stopSend {
			break
		}
		next := min(int64(float64(k)*l.period), rs.stopSend, now+maxWait)
		sleepUntil(ctx, rs, timer, next)
	}
	for _, q := range l.queues {
		close(q)
	}
	l.wg.Wait()
}

// enqueue hands join j, started at now, to its source's goroutine.
func (l *legitHTTP) enqueue(j legitJoin, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.resultFor(j)
	r.lag.Record(time.Duration(now - j.due))
	select {
	case l.queues[j.k%int64(len(l.queues))] <- j:
	default:
		r.joins.notSent++
	}
}

// startJoin starts join j on a connection of its own, in a goroutine of
// its own, with an idle worker or a new one; with maxJoins in flight it
// counts as not sent. Only the pacer calls it.
func (l *legitHTTP) startJoin(ctx context.Context, j legitJoin) {
	var w *httpWorker
	select {
	case w = <-l.idle:
	default:
		if len(l.workers) == l.maxJoins {
			l.mu.Lock()
			l.resultFor(j).joins.notSent++
			l.mu.Unlock()
			return
		}
		w = l.newWorker(len(l.workers), nil)
		l.workers = append(l.workers, w)
	}
	l.wg.Go(func() {
		defer func() { l.idle <- w }()
		// The join's latency and lag run from here: its connect starts
		// now, and the time since it was due is the generator's.
		j.start = l.rs.now()
		l.mu.Lock()
		l.resultFor(j).lag.Record(time.Duration(j.start - j.due))
		l.mu.Unlock()
		w.dialer.LocalAddr = l.laddrs[j.k%int64(len(l.laddrs))]
		out, msg := l.join(ctx, w, j)
		if w.conn != nil {
			w.closeConn()
		}
		l.record(j, out, msg, l.rs.now())
	})
}

// record counts how join j ended, at done.
func (l *legitHTTP) record(j legitJoin, out outcome, msg string, done int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.resultFor(j)
	switch out {
	case outcomeOK:
		r.joins.succeeded(done - j.start)
	case outcomeFailure:
		r.joins.failed([]byte(msg), done-j.start)
	case outcomeTimeout:
		r.joins.timeouts++
	case outcomeBad:
		r.joins.bad++
	default:
		r.joins.notSent++
	}
}

// serve runs the joins of one source until its queue is closed. A join
// that waited in the queue for more than Timeout times out unsent, and the
// connection and the request of a join are each bounded by Timeout, so it
// returns within three Timeouts of the queue's closing, or at once when
// ctx is done.
func (l *legitHTTP) serve(ctx context.Context, w *httpWorker, q chan legitJoin) {
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for j := range q {
		if ctx.Err() != nil {
			continue // drain the queue; these joins are in no count but due
		}
		var out outcome
		var msg string
		if l.rs.now()-j.start > l.rs.timeout {
			// It waited for the source's earlier joins longer than a
			// peer would: give up without sending. This also bounds
			// the wait after the end of the run.
			out = outcomeTimeout
		} else {
			out, msg = l.join(ctx, w, j)
		}
		l.record(j, out, msg, l.rs.now())
	}
}

// join makes one join from w's source: a connection if none is open, then
// the announce, once more on a new connection if the kept-alive one had
// been closed by the server.
func (l *legitHTTP) join(ctx context.Context, w *httpWorker, j legitJoin) (outcome, string) {
	for range 2 {
		if w.conn == nil && !w.dial(ctx, l.rs.now()) {
			var ne net.Error
			if errors.As(w.dialErr, &ne) && ne.Timeout() {
				return outcomeTimeout, ""
			}
			return outcomeFailure, "connect: " + errText(w.dialErr)
		}
		ih, sp := joinPeer(l.hashes, j.k, joinPort(uint32(w.nextPeer)))
		w.nextPeer++
		a := httpAnnounce{
			infoHash: ih, peerID: sp.id, port: sp.port, left: sp.left,
			key: sp.key, numWant: l.rs.cfg.NumWant, started: true,
		}
		w.req = w.appendRequestEnd(appendHTTPAnnounce(w.req[:0], w.target.announcePrefix, &a))
		out, msg := w.exchange(l.rs.now(), classAnnounceLegit)
		if out != outcomeNotSent {
			return out, msg
		}
	}
	return outcomeNotSent, ""
}
