package loadgen

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/udpbatch"
)

// The UDP flood: each flood goroutine owns a share of the flood sources'
// sockets and visits them in turn. A visit reads what came back (without
// waiting), then sends one batch of up to udpBatch datagrams, as one GSO
// super-packet where the kernel can. Nothing waits for a reply: replies
// are counted by kind as they come. A datagram costs the generator a few
// random numbers and its share of a system call.

const (
	floodRecvBufs  = 16
	floodRecvBuf   = 1500 // replies are cut here; only their headers matter
	floodPeerID    = "-WF0001-"
	garbageMinLen  = 8
	garbageMaxLen  = 160
	floodDrainMax  = int64(time.Second)
	floodDrainIdle = int64(50 * time.Millisecond) // quiet this long: the drain is over
	floodConnFlag  = 1 << 31                      // set in the transaction IDs of connects
	floodMeasured  = 1 << 30                      // set in those of announces sent after the warm-up
	floodTxMask    = floodMeasured - 1
)

type floodUDP struct {
	workers []*floodUDPWorker
}

// floodUDPWorker is one flood goroutine and its sources.
type floodUDPWorker struct {
	rs    *runState
	pacer *floodPacer
	mode  FloodMode
	srcs  []*floodSource
	rng   *rand.Rand
	gso   bool

	ann      bep15.Announce // what every announce has in common
	pkts     []byte         // udpBatch datagrams back to back
	oobBuf   []byte
	recvBufs [][]byte // shared by the sources: only this goroutine reads

	tx    uint32
	peer  uint64
	stats floodStats
}

// floodSource is one flood source address: its socket and, in valid mode,
// its connection ID.
type floodSource struct {
	conn *net.UDPConn
	bio  *udpbatch.Conn

	hasConn     bool
	connID      uint64
	connAt      int64
	connBusy    bool
	connTx      uint32
	lastConnect int64
}

func newFloodUDP(rs *runState, target netip.AddrPort, srcs []netip.Addr, pacer *floodPacer) (*floodUDP, error) {
	cfg := rs.cfg
	f := &floodUDP{}
	nw := min(cfg.FloodWorkers, len(srcs))
	for i := range nw {
		w := &floodUDPWorker{
			rs: rs, pacer: pacer, mode: cfg.FloodMode,
			rng:    rand.New(rand.NewPCG(uint64(i)+1000, uint64(time.Now().UnixNano()))),
			pkts:   make([]byte, 0, udpBatch*max(bep15.AnnounceLen, garbageMaxLen)),
			oobBuf: make([]byte, gsoOOBLen),
			gso:    !cfg.NoGSO,
			ann: bep15.Announce{Left: 1 << 30, Event: uint32(bittorrent.EventStarted),
				NumWant: int32(cfg.NumWant), Port: 6881},
		}
		copy(w.ann.PeerID[:], floodPeerID)
		w.recvBufs = make([][]byte, floodRecvBufs)
		for j := range w.recvBufs {
			w.recvBufs[j] = make([]byte, floodRecvBuf)
		}
		f.workers = append(f.workers, w)
	}
	conns, err := dialSources(target, srcs, "flood")
	if err != nil {
		return nil, err
	}
	for i, c := range conns {
		w := f.workers[i%nw]
		bio, err := udpbatch.New(c, w.recvBufs, udpBatch)
		if err != nil {
			for _, c := range conns[i:] {
				c.Close()
			}
			f.close()
			return nil, fmt.Errorf("open flood UDP socket %d (%v): %w", i, srcs[i], err)
		}
		if i < nw && w.gso {
			w.gso = gsoSupported(c)
		}
		w.srcs = append(w.srcs, &floodSource{conn: c, bio: bio, lastConnect: -connIDLife})
	}
	return f, nil
}

// dialSources opens a UDP socket for each source address, bound to it and
// connected to target. class names the sockets in an error, upon which
// the sockets already open are closed.
func dialSources(target netip.AddrPort, srcs []netip.Addr, class string) ([]*net.UDPConn, error) {
	network := "udp4"
	if target.Addr().Is6() {
		network = "udp6"
	}
	raddr := net.UDPAddrFromAddrPort(target)
	conns := make([]*net.UDPConn, 0, len(srcs))
	for i, a := range srcs {
		c, err := net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)), raddr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("open %s UDP socket %d (%v): %w", class, i, a, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func (f *floodUDP) close() {
	for _, w := range f.workers {
		for _, s := range w.srcs {
			s.conn.Close()
		}
	}
}

func (f *floodUDP) stats() *floodStats {
	total := new(floodStats)
	for _, w := range f.workers {
		total.merge(&w.stats)
	}
	return total
}

func (f *floodUDP) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range f.workers {
		wg.Go(func() { w.loop(ctx) })
	}
	wg.Wait()
	f.close()
}

func (w *floodUDPWorker) loop(ctx context.Context) {
	rs := w.rs
	sentInPass := false
	for i := 0; ; i++ {
		if i == len(w.srcs) {
			i = 0
			if !sentInPass {
				time.Sleep(time.Millisecond) // nothing to send from anyone: no connection ID yet
			}
			sentInPass = false
		}
		now := rs.now()
		if ctx.Err() != nil {
			rs.stopSending(now, stopCanceled)
			return
		}
		if now >= rs.stopSend || rs.stopAt.Load() != 0 {
			break
		}
		s := w.srcs[i]
		w.poll(s, now)
		if w.mode == FloodValid && !w.ready(s, now) {
			continue
		}
		n := w.pacer.take(now, udpBatch)
		if n == 0 {
			time.Sleep(w.pacer.pause(now))
			i-- // this source's turn again
			continue
		}
		if n = rs.reserve(n, now); n == 0 {
			break
		}
		w.sendBatch(s, n, now)
		sentInPass = true
	}
	w.drain(ctx)
}

// ready gets s a connection ID when it needs one (valid mode) and reports
// whether it has one it may use.
func (w *floodUDPWorker) ready(s *floodSource, now int64) bool {
	if s.connBusy && now-s.lastConnect > w.rs.timeout {
		s.connBusy = false // lost; try again
	}
	need := !s.hasConn || now-s.connAt >= connIDRefresh
	if need && !s.connBusy && now-s.lastConnect >= connectRetry {
		w.tx++
		s.connTx = floodConnFlag | w.tx&(floodConnFlag-1)
		var b [bep15.HeaderLen]byte
		if _, err := s.conn.Write(bep15.AppendConnect(b[:0], s.connTx)); err != nil {
			w.stats.ioError(err)
		} else {
			s.connBusy = true
			w.stats.connects++
		}
		s.lastConnect = now
	}
	return s.hasConn && now-s.connAt < connIDLife
}

// sendBatch sends n datagrams from s: announces, each for a new info
// hash from a new peer, or garbage of one random length.
func (w *floodUDPWorker) sendBatch(s *floodSource, n int, now int64) {
	size := bep15.AnnounceLen
	measured := uint32(0)
	if now >= w.rs.warmupEnd {
		measured = floodMeasured
	}
	if w.mode == FloodGarbage {
		size = garbageMinLen + w.rng.IntN(garbageMaxLen-garbageMinLen+1)
		w.pkts = w.pkts[:n*size]
		w.fillRandom(w.pkts)
	} else {
		a := &w.ann
		w.pkts = w.pkts[:0]
		for range n {
			connID := s.connID
			if w.mode == FloodBadCookie {
				connID = w.rng.Uint64()
			}
			w.tx++
			binary.BigEndian.PutUint64(a.InfoHash[0:], w.rng.Uint64())
			binary.BigEndian.PutUint64(a.InfoHash[8:], w.rng.Uint64())
			r := w.rng.Uint64()
			binary.BigEndian.PutUint32(a.InfoHash[16:], uint32(r))
			w.peer++
			binary.BigEndian.PutUint64(a.PeerID[len(floodPeerID):], w.peer)
			a.Port = uint16(r>>32) | 1024
			w.pkts = bep15.AppendAnnounce(w.pkts, connID, w.tx&floodTxMask|measured, a)
		}
	}
	m := 0
	if w.gso && n > 1 {
		s.bio.Queue(w.pkts, putGSO(w.oobBuf, size))
		m = 1
	} else {
		for i := range n {
			s.bio.Queue(w.pkts[i*size:(i+1)*size], nil)
		}
		m = n
	}
	k, err := s.bio.Flush()
	if err != nil {
		s.bio.Discard()
		w.stats.sendErrors++
		w.stats.ioError(err)
		if w.gso && m == 1 {
			w.gso = false // perhaps the route cannot do GSO: go on without
		}
	}
	if now >= w.rs.warmupEnd {
		if m == 1 && n > 1 {
			k *= n
		}
		w.stats.sent += uint64(k)
	}
}

func (w *floodUDPWorker) fillRandom(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, w.rng.Uint64())
		b = b[8:]
	}
	for i, v := 0, w.rng.Uint64(); i < len(b); i++ {
		b[i] = byte(v >> (8 * i))
	}
}

// poll reads and counts what has come back to s, without waiting.
func (w *floodUDPWorker) poll(s *floodSource, now int64) int {
	total := 0
	for range 8 { // bounded: a source cannot keep its goroutine reading
		n, err := s.bio.Poll()
		if err != nil {
			w.stats.ioError(err)
			return total
		}
		for i := range n {
			w.handle(s, s.bio.Packet(i), now)
		}
		total += n
		if n < len(w.recvBufs) {
			break
		}
	}
	return total
}

// handle counts one reply to s. A reply counts if its request was sent
// after the warm-up, as its transaction ID says; garbage has no
// transaction ID, so there it counts if it came after the warm-up.
func (w *floodUDPWorker) handle(s *floodSource, b []byte, now int64) {
	action, txid, ok := bep15.ParseReplyHeader(b)
	measured := now >= w.rs.warmupEnd
	if ok && w.mode != FloodGarbage {
		measured = txid&floodMeasured != 0
	}
	if ok && action == bep15.ActionConnect && s.connBusy && txid == s.connTx {
		s.connBusy = false
		if id, f := bep15.CheckConnect(b); f == bep15.NoFault {
			s.hasConn, s.connID, s.connAt = true, id, now
			w.stats.connectsOK++
		}
		return
	}
	if !measured {
		return
	}
	switch {
	case !ok:
		w.stats.message([]byte("short reply"), kindOther)
	case action == bep15.ActionError:
		w.stats.refusal(bep15.ErrorMessage(b))
	case action == bep15.ActionAnnounce && len(b) >= bep15.AnnounceReplyLen:
		w.stats.kinds[kindAnnounce]++
	case action == bep15.ActionAnnounce:
		w.stats.message([]byte("announce reply without interval and counts"), kindOther)
	default:
		w.stats.message(fmt.Appendf(nil, "action %d", action), kindOther)
	}
}

// drain reads the replies still coming after sending stopped: until none
// has come for floodDrainIdle, at most floodDrainMax or Timeout.
func (w *floodUDPWorker) drain(ctx context.Context) {
	rs := w.rs
	start := rs.now()
	end := start + min(floodDrainMax, rs.timeout)
	lastReply := start
	for {
		now := rs.now()
		if ctx.Err() != nil || now >= end || now-lastReply >= floodDrainIdle {
			return
		}
		got := 0
		for _, s := range w.srcs {
			got += w.poll(s, now)
		}
		if got > 0 {
			lastReply = now
		}
		time.Sleep(5 * time.Millisecond)
	}
}
