package loadgen

import (
	"context"
	"errors"
	"math/bits"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/udpbatch"
)

// Connection IDs (BEP 15): a client may use one for a minute after
// receiving it. Workers refresh theirs before that without pausing, and
// also, at most once a second, after an error reply or a timeout, in case
// the tracker forgot it. Times are nanoseconds, like runState's clock.
const (
	connIDLife    = int64(time.Minute)
	connIDRefresh = int64(45 * time.Second)
	refreshEvery  = int64(time.Second)
	connectRetry  = int64(100 * time.Millisecond) // between connects while having no ID
)

const (
	maxWait        = int64(100 * time.Millisecond) // longest a worker blocks before checking the clock and ctx
	never          = int64(1<<63 - 1)
	udpBatch       = 64   // requests per sendmmsg, replies per recvmmsg
	defaultNumWant = 200  // peers a reply may carry when numwant is -1
	maxErrorReply  = 1024 // bytes of an error reply that fit the receive buffer
	// recvMemPerWorker bounds a worker's receive buffers (unless 4 of
	// them need more): 1024 workers with numwant 1000 over IPv6 would
	// otherwise hold over a gigabyte.
	recvMemPerWorker = 256 << 10
)

// udpSlot is one request in flight. Its index and generation make up the
// transaction ID, so a reply finds its request without a map lookup.
type udpSlot struct {
	sentAt   int64
	gen      uint32
	class    class
	busy     bool
	measured bool

	// The last request of this slot that timed out, so a late reply to
	// it is told apart from a reply that matches nothing.
	lateValid    bool
	lateMeasured bool
	lateClass    class
	lateGen      uint32
}

// udpWorker is one simulated client: one connected UDP socket bound to its
// own source address, up to Window requests in flight, and its own
// connection ID. It runs on a single goroutine and shares nothing mutable
// but the run's request budget.
type udpWorker struct {
	id   int
	run  *runState
	conn *net.UDPConn
	bio  *udpbatch.Conn
	ipv6 bool
	rng  *rand.Rand

	window   int
	slots    []udpSlot // window+1; the last one is for connects
	free     []uint32
	slotBits uint
	genMask  uint32
	inflight int // announces and scrapes in flight

	nextExpire int64 // no request in flight times out before this
	deadline   int64 // read deadline currently set on conn; 0 for none

	hasConn     bool
	connID      uint64
	connAt      int64
	suspect     bool // an error or timeout since connID arrived
	lastConnect int64

	tokens    float64 // requests this worker may send now, when rate-limited
	lastToken int64

	peers    int // how many simulated peers this worker owns
	nextPeer int
	started  []uint64 // bit j: peer j announced "started"
	sp       simPeer
	ann      bep15.Announce
	hashes   []bittorrent.InfoHash // of the scrape being built

	// The batch being sent: requests back to back in sendBuf, then
	// grouped into parts, each a run of equal-length requests sent as one
	// UDP GSO super-packet when gso is set.
	sendBuf   []byte
	sendLens  []int
	sendSlots []uint32
	oobBufs   [][]byte // per part: room for a UDP_SEGMENT control message
	runEnd    []int    // request index after each part's run
	gso       bool

	recvBufs  [][]byte
	maxReply  int // a reply this long (the buffer is one byte longer) is acceptable
	stats     workerStats
	warmStats workerStats // counts during warm-up, not reported
}

func newUDPWorker(id int, rs *runState, conn *net.UDPConn, v6 bool) (*udpWorker, error) {
	cfg := rs.cfg
	w := &udpWorker{
		id: id, run: rs, conn: conn, ipv6: v6,
		rng:    rand.New(rand.NewPCG(uint64(id)+1, uint64(time.Now().UnixNano()))),
		window: cfg.Window,
		peers:  rs.pop.peersOf(id),
	}
	w.slots = make([]udpSlot, cfg.Window+1)
	w.slotBits = uint(bits.Len(uint(cfg.Window)))
	w.genMask = 1<<(32-w.slotBits) - 1
	w.free = make([]uint32, 0, cfg.Window)
	for i := cfg.Window - 1; i >= 0; i-- {
		w.free = append(w.free, uint32(i))
	}
	w.started = make([]uint64, (w.peers+63)/64)
	w.tokens = 1
	w.nextExpire = never
	w.lastConnect = -connIDLife // long ago: connect at once

	reqLen := max(bep15.AnnounceLen, bep15.HeaderLen+bep15.HashLen*cfg.ScrapeHashes)
	w.sendBuf = make([]byte, 0, udpBatch*reqLen)
	w.sendLens = make([]int, udpBatch)
	w.sendSlots = make([]uint32, udpBatch)
	w.hashes = make([]bittorrent.InfoHash, 0, cfg.ScrapeHashes)
	w.oobBufs = make([][]byte, udpBatch)
	w.runEnd = make([]int, udpBatch)
	for i := range w.oobBufs {
		w.oobBufs[i] = make([]byte, gsoOOBLen)
	}
	w.gso = rs.gso && gsoSupported(conn)
	peerLen, numWant := bittorrent.CompactLen4, cfg.NumWant
	if v6 {
		peerLen = bittorrent.CompactLen6
	}
	if numWant < 0 {
		numWant = defaultNumWant
	}
	w.maxReply = max(bep15.AnnounceReplyLen+peerLen*numWant, bep15.ReplyHeaderLen+bep15.ScrapeEntryLen*cfg.ScrapeHashes, maxErrorReply)
	// Up to udpBatch buffers, but no more than recvMemPerWorker bytes
	// when replies may be large.
	nrecv := min(udpBatch, cfg.Window+1, max(4, recvMemPerWorker/(w.maxReply+1)))
	w.recvBufs = make([][]byte, nrecv)
	for i := range w.recvBufs {
		w.recvBufs[i] = make([]byte, w.maxReply+1)
	}
	var err error
	if w.bio, err = udpbatch.New(conn, w.recvBufs, udpBatch); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *udpWorker) connSlot() uint32 { return uint32(w.window) }

// statsFor returns where to count a request: the report, or the discarded
// warm-up counts.
func (w *udpWorker) statsFor(measured bool, c class) *classStats {
	if measured {
		return &w.stats.classes[c]
	}
	return &w.warmStats.classes[c]
}

// loop runs the worker until sending has stopped (end of Duration, request
// budget spent) and every request in flight is answered or timed out, or
// until ctx is done. It always returns within Timeout plus a few
// milliseconds after sending stops.
func (w *udpWorker) loop(ctx context.Context) {
	rs := w.run
	sending := true
	defer w.conn.Close()
	for {
		if ctx.Err() != nil {
			rs.stopSending(rs.now(), stopCanceled)
			return
		}
		now := rs.now()
		if sending && (now >= rs.stopSend || rs.budgetSpent()) {
			sending = false
		}
		if now >= w.nextExpire {
			w.expire(now)
		}
		if !sending && w.inflight == 0 && !w.slots[w.connSlot()].busy {
			return
		}
		if sending && !w.send(now) {
			sending = false
		}
		w.receive(now, sending)
	}
}

// alloc marks slot idx busy with a new generation and returns the
// transaction ID of its request.
func (w *udpWorker) alloc(idx uint32, c class, now int64, measured bool) uint32 {
	s := &w.slots[idx]
	s.gen = (s.gen + 1) & w.genMask
	s.busy, s.class, s.sentAt, s.measured = true, c, now, measured
	if idx != w.connSlot() {
		w.inflight++
	}
	w.nextExpire = min(w.nextExpire, now+w.run.timeout)
	return idx | s.gen<<w.slotBits
}

func (w *udpWorker) release(idx uint32) {
	w.slots[idx].busy = false
	if idx != w.connSlot() {
		w.free = append(w.free, idx)
		w.inflight--
	}
}

// send fills the window (within the rate and the run's budget) and a
// connect if one is due. It reports false once the budget is spent.
func (w *udpWorker) send(now int64) bool {
	rs := w.run
	measured := now >= rs.warmupEnd
	k := 0
	w.sendBuf = w.sendBuf[:0]
	needConn := !w.hasConn || now-w.connAt >= connIDLife
	if !w.slots[w.connSlot()].busy {
		due := needConn && now-w.lastConnect >= connectRetry
		due = due || (!needConn && (w.suspect || now-w.connAt >= connIDRefresh) && now-w.lastConnect >= refreshEvery)
		if due {
			txid := w.alloc(w.connSlot(), classConnect, now, measured)
			w.sendBuf = bep15.AppendConnect(w.sendBuf, txid)
			w.sendLens[0] = len(w.sendBuf)
			w.sendSlots[0] = w.connSlot()
			w.lastConnect = now
			k = 1
		}
	}
	if needConn {
		w.flush(k, now)
		return true
	}
	n := w.window - w.inflight
	if rs.ratePerNs > 0 {
		w.tokens = min(rs.burst, w.tokens+float64(now-w.lastToken)*rs.ratePerNs)
		w.lastToken = now
		n = min(n, int(w.tokens))
	}
	if n > 0 {
		n = rs.reserve(n, now)
		if n == 0 {
			w.flush(k, now)
			return false
		}
		if rs.ratePerNs > 0 {
			w.tokens -= float64(n)
		}
	}
	for ; n > 0; n-- {
		idx := w.free[len(w.free)-1]
		w.free = w.free[:len(w.free)-1]
		w.sendSlots[k] = idx
		start := len(w.sendBuf)
		w.sendBuf = w.build(w.sendBuf, idx, now, measured)
		w.sendLens[k] = len(w.sendBuf) - start
		if k++; k == udpBatch {
			w.flush(k, now)
			k = 0
			w.sendBuf = w.sendBuf[:0]
		}
	}
	w.flush(k, now)
	return true
}

// build appends to b the next request (announce or scrape, as the
// scenario says) for slot idx.
func (w *udpWorker) build(b []byte, idx uint32, now int64, measured bool) []byte {
	cfg := w.run.cfg
	scrape := cfg.Scenario == ScenarioScrape ||
		cfg.Scenario == ScenarioMixed && w.rng.Float64() < cfg.ScrapeFraction
	if scrape {
		unknown := false
		w.hashes = w.hashes[:0]
		for range cfg.ScrapeHashes {
			var ih bittorrent.InfoHash
			if cfg.UnknownFraction > 0 && w.rng.Float64() < cfg.UnknownFraction {
				randomHash(w.rng, (*[20]byte)(&ih))
				unknown = true
			} else {
				ih = w.run.pop.hashes[w.rng.IntN(len(w.run.pop.hashes))]
			}
			w.hashes = append(w.hashes, ih)
		}
		c := classScrapeLegit
		if unknown {
			c = classScrapeUnknown
		}
		txid := w.alloc(idx, c, now, measured)
		return bep15.AppendScrape(b, w.connID, txid, w.hashes)
	}

	j := w.nextPeer
	if w.nextPeer++; w.nextPeer == w.peers {
		w.nextPeer = 0
	}
	w.run.pop.fill(w.id, j, &w.sp)
	a := &w.ann
	a.PeerID, a.Port, a.Left, a.Key = w.sp.id, w.sp.port, w.sp.left, w.sp.key
	a.Downloaded, a.Uploaded = 0, 0
	a.NumWant = int32(cfg.NumWant)
	c := classAnnounceLegit
	if cfg.UnknownFraction > 0 && w.rng.Float64() < cfg.UnknownFraction {
		c = classAnnounceUnknown
		randomHash(w.rng, (*[20]byte)(&a.InfoHash))
		a.Event = uint32(bittorrent.EventStarted) // new to this torrent
	} else {
		a.InfoHash = w.run.pop.hashes[w.sp.torrent]
		a.Event = uint32(bittorrent.EventNone)
		if w.started[j/64]&(1<<(j%64)) == 0 {
			w.started[j/64] |= 1 << (j % 64)
			a.Event = uint32(bittorrent.EventStarted)
		}
	}
	txid := w.alloc(idx, c, now, measured)
	return bep15.AppendAnnounce(b, w.connID, txid, a)
}

// gsoMaxBytes bounds a UDP GSO super-packet, which must fit one IP packet.
const gsoMaxBytes = 65000

// flush sends the first k requests built into sendBuf, in as few messages
// as GSO allows. Requests the socket refuses are released and not counted
// as sent.
func (w *udpWorker) flush(k int, now int64) {
	m, off := 0, 0
	for i := 0; i < k; m++ {
		size := w.sendLens[i]
		j := i + 1
		if w.gso {
			for j < k && w.sendLens[j] == size && (j-i+1)*size <= gsoMaxBytes {
				j++
			}
		}
		var oob []byte
		if j-i > 1 {
			oob = putGSO(w.oobBufs[m], size)
		}
		w.bio.Queue(w.sendBuf[off:off+(j-i)*size], oob)
		w.runEnd[m] = j
		off += (j - i) * size
		i = j
	}
	done, err := w.bio.Flush()
	if err != nil {
		w.bio.Discard() // the rest of the batch is released below
		w.ioError(err)
		w.gso = false // perhaps the route cannot do GSO: go on without
	}
	sent := 0
	if done > 0 {
		sent = w.runEnd[done-1]
	}
	for i := range k {
		idx := w.sendSlots[i]
		s := &w.slots[idx]
		if i >= sent {
			w.release(idx)
			continue
		}
		w.statsFor(s.measured, s.class).sent++
	}
}

func (w *udpWorker) ioError(err error) {
	w.stats.ioError(err)
}

// receive waits for replies until the next thing the worker must do (a
// timeout to check, a token to spend, the end of sending), at most maxWait,
// and handles the replies that came.
func (w *udpWorker) receive(now int64, sending bool) {
	rs := w.run
	wake := min(now+maxWait, w.nextExpire)
	if sending {
		wake = min(wake, rs.stopSend)
		if !w.hasConn && !w.slots[w.connSlot()].busy {
			wake = min(wake, w.lastConnect+connectRetry)
		}
		if rs.ratePerNs > 0 && w.inflight < w.window && w.tokens < 1 {
			wake = min(wake, now+int64((1-w.tokens)/rs.ratePerNs)+1)
		}
	}
	if wake <= now {
		return
	}
	if w.deadline == 0 || wake < w.deadline || w.deadline <= now {
		if err := w.conn.SetReadDeadline(rs.base.Add(time.Duration(wake))); err != nil {
			w.ioError(err)
			return
		}
		w.deadline = wake
	}
	n, err := w.bio.Read()
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			w.ioError(err)
		}
		return
	}
	t := rs.now()
	for i := range n {
		w.handle(w.bio.Packet(i), t)
	}
}

// handle checks one reply received at now and counts it.
func (w *udpWorker) handle(b []byte, now int64) {
	action, txid, ok := bep15.ParseReplyHeader(b)
	if !ok {
		w.stats.unmatched[badShort]++
		return
	}
	idx := txid & (1<<w.slotBits - 1)
	gen := txid >> w.slotBits
	if int(idx) >= len(w.slots) {
		w.stats.unmatched[badTxID]++
		return
	}
	s := &w.slots[idx]
	if !s.busy || s.gen != gen {
		if s.lateValid && s.lateGen == gen {
			s.lateValid = false
			w.statsFor(s.lateMeasured, s.lateClass).late++
			return
		}
		w.stats.unmatched[badTxID]++
		return
	}
	w.release(idx)
	st := w.statsFor(s.measured, s.class)
	lat := now - s.sentAt
	if lat > w.run.timeout {
		st.timeouts++
		st.late++
		return
	}
	if len(b) > w.maxReply {
		st.badReply(badTruncated)
		return
	}
	if action == bep15.ActionError {
		st.failures++
		st.failMsgs.add(bep15.ErrorMessage(b))
		st.latency(time.Duration(lat))
		if s.class != classConnect {
			w.suspect = true
		}
		return
	}
	var f bep15.Fault
	switch s.class {
	case classConnect:
		var id uint64
		if id, f = bep15.CheckConnect(b); f == bep15.NoFault {
			w.connID, w.connAt, w.hasConn, w.suspect = id, now, true, false
		}
	case classAnnounceLegit, classAnnounceUnknown:
		_, f = bep15.CheckAnnounce(b, w.ipv6, int32(w.run.cfg.NumWant))
	case classScrapeLegit, classScrapeUnknown:
		f = bep15.CheckScrape(b, w.run.cfg.ScrapeHashes)
	}
	if f != bep15.NoFault {
		st.badReply(badFor(f))
		return
	}
	st.ok++
	st.latency(time.Duration(lat))
}

// expire counts the requests in flight for longer than Timeout as timed
// out and frees their slots.
func (w *udpWorker) expire(now int64) {
	to := w.run.timeout
	next := never
	for i := range w.slots {
		s := &w.slots[i]
		if !s.busy {
			continue
		}
		if now-s.sentAt <= to {
			next = min(next, s.sentAt+to)
			continue
		}
		w.statsFor(s.measured, s.class).timeouts++
		s.lateValid, s.lateGen, s.lateClass, s.lateMeasured = true, s.gen, s.class, s.measured
		if s.class != classConnect {
			w.suspect = true
		}
		w.release(uint32(i))
	}
	w.nextExpire = next
}

// badFor names a malformed reply's fault as the report does.
func badFor(f bep15.Fault) badReason {
	switch f {
	case bep15.FaultShort:
		return badShort
	case bep15.FaultAction:
		return badAction
	case bep15.FaultInterval:
		return badInterval
	case bep15.FaultPeers:
		return badPeers
	}
	return badLength
}
