// Package udptracker is warden's BEP 15 UDP tracker frontend. It owns the
// sockets, the read loop, stateless connection IDs (cookies) and the
// packet codec; what an announce or scrape may do, and the answers, belong
// to package tracker.
//
// The frontend is built to keep running while abused:
//
//   - Connection IDs are MACs of the source IP and the time, under a
//     random key that rotates; nothing is stored or allocated for a source
//     until its connection ID checks out.
//   - Datagrams that are malformed, carry an unknown action or a forged or
//     expired connection ID get no reply. They are counted in Stats, never
//     logged one line each.
//   - The only reply to an unverified source, the connect reply, is no
//     longer than the request, so the tracker is useless as an amplifier;
//     connects beyond an address's own rate (limit.connect_rate_per_sec)
//     get none. Every other reply goes to a source whose connection ID
//     proved it receives at its address.
//   - A refused announce is answered so that the client calms down: its
//     first refusal for a torrent with an error carrying the reason, the
//     next ones within the refusal interval with an empty announce reply
//     carrying that interval (Config.RefusalReply, calm.go).
//   - A peer is recorded at the datagram's source IP; the IP field of an
//     announce is ignored.
//   - A fixed set of workers, each with its own SO_REUSEPORT socket, reads
//     and writes in batches (recvmmsg/sendmmsg) into buffers allocated once:
//     no goroutine and, on Linux, no allocation per datagram.
package udptracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/confkey"
	"warden/internal/limit"
	"warden/internal/ratelog"
	"warden/internal/sockfilter"
	"warden/internal/tracker"
	"warden/internal/udpbatch"
)

// Server is a running UDP tracker: one socket and one reader goroutine per
// worker. Create it with Listen, serve with Run, stop by cancelling Run's
// context or with Close.
type Server struct {
	log     *slog.Logger
	now     func() time.Time
	addr    netip.AddrPort
	workers []*worker
	ioLog   *ratelog.Logger // socket errors

	guard      *limit.Guard
	kernelBans bool // the guard keeps the sockets' filters (Config.KernelBans)

	started   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed by Close
}

// worker is one socket, its read loop and its scratch.
type worker struct {
	pc        *net.UDPConn
	conn      *udpbatch.Conn
	codec     *codec
	out       [][]byte // reply buffers, one per batch slot
	batchSize int
	queue     *backlog // the socket's receive queue; nil where it cannot be read
	// The last reading of the queue after a full batch (see behind).
	wasBehind bool
	recheck   int       // full batches left before the queue is read again
	checkedAt time.Time // when it was read
	stats     counters
}

// options are the seams tests use; the zero value is production.
type options struct {
	now      func() time.Time // default time.Now
	random   func([]byte)     // cookie keys; default crypto/rand
	portable bool             // use x/net batch I/O even on Linux
	guard    *limit.Guard     // nil: no limits
}

// Listen validates cfg and binds cfg.Workers UDP sockets to addr (normally
// cfg.Listen), so that an address in use is reported here and a port of 0
// is resolved before Run. With more than one worker the sockets share the
// port through SO_REUSEPORT; a plain socket is bound and released first,
// so that a port another process holds is still reported as in use. An
// address with an empty or wildcard host gives dual-stack sockets that
// serve IPv4 and IPv6.
//
// Listen starts nothing; the sockets stay open until Close or the end of
// Run. It logs one Info line with the effective settings, never the
// cookie key or secret.
//
// guard, if not nil, is consulted for every datagram: a blocklisted source
// is dropped at once, and a verified announce or scrape from a source over
// its rate or banned is dropped without a reply.
func Listen(addr string, tr *tracker.Tracker, guard *limit.Guard, cfg Config, log *slog.Logger) (*Server, error) {
	return listen(addr, tr, cfg, log, options{guard: guard})
}

func listen(addr string, tr *tracker.Tracker, cfg Config, log *slog.Logger, o options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Workers > 1 && !haveReusePort {
		return nil, confkey.Errorf("workers", "must be 1: this OS lacks SO_REUSEPORT")
	}
	if o.now == nil {
		o.now = time.Now
	}
	log = log.With("component", "udptracker")
	s := &Server{
		guard: o.guard,
		log:   log,
		now:   o.now,
		ioLog: ratelog.New(log, slog.LevelError, 10*time.Second, o.now),
		done:  make(chan struct{}),
	}
	jar := newCookieJar(cfg.CookieRotation, o.now, cfg.CookieSecret, o.random)
	errLog := ratelog.New(log, slog.LevelError, 10*time.Second, o.now)
	var calm *calmTable // shared by the workers: a client may reach any
	if cfg.RefusalReply == ReplyCalm {
		calm = newCalmTable(cfg.RefusalTableBytes, tr.Config().RefusalInterval)
	}

	lc := net.ListenConfig{}
	bind := addr
	if cfg.Workers > 1 {
		// Sockets with SO_REUSEPORT share a port with any other such
		// socket of the same user, so a second warden would silently
		// take half the traffic. A plain socket bound first finds the
		// address in use, and resolves port 0.
		probe, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return nil, fmt.Errorf("udptracker: listen %s: %w", addr, err)
		}
		bound := probe.LocalAddr().(*net.UDPAddr).AddrPort()
		probe.Close()
		if bind, err = rebind(addr, bound); err != nil {
			return nil, fmt.Errorf("udptracker: listen %s: %w", addr, err)
		}
		lc.Control = reusePort
	}
	for range cfg.Workers {
		w, err := newWorker(lc, bind, tr, jar, calm, errLog, cfg, o)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("udptracker: listen %s: %w", addr, err)
		}
		s.workers = append(s.workers, w)
	}
	s.addr = s.workers[0].pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if s.guard != nil && cfg.KernelBans {
		s.kernelBans = true
		for _, w := range s.workers {
			if err := s.guard.Filter(w.pc, sockfilter.Datagrams); err != nil {
				log.Warn("banned sources' datagrams are dropped by the workers, not the kernel", "err", err)
				s.kernelBans = false
				break
			}
		}
	}
	io := s.workers[0].conn.Name()
	log.Info("listening", "addr", s.addr, "workers", cfg.Workers, "batch_size", cfg.BatchSize,
		"io", io, "cookie_rotation", cfg.CookieRotation, "shared_cookies", len(cfg.CookieSecret) > 0,
		"socket_buffer_bytes", cfg.SocketBufferBytes, "refusal_reply", cfg.RefusalReply)
	return s, nil
}

// newWorker binds one socket to addr and allocates everything its loop
// will ever need.
func newWorker(lc net.ListenConfig, addr string, tr *tracker.Tracker, jar *cookieJar, calm *calmTable, errLog *ratelog.Logger, cfg Config, o options) (*worker, error) {
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	w := &worker{pc: pc.(*net.UDPConn), batchSize: cfg.BatchSize}
	if n := cfg.SocketBufferBytes; n > 0 {
		if err := setBuffers(w.pc, n); err != nil {
			w.pc.Close()
			return nil, fmt.Errorf("socket_buffer_bytes: %w", err)
		}
	}
	// Receive buffers one byte longer than maxPacket, so that a longer
	// datagram shows as one and the codec drops it.
	in := make([][]byte, cfg.BatchSize)
	inSlab := make([]byte, cfg.BatchSize*(maxPacket+1))
	for k := range in {
		in[k] = inSlab[k*(maxPacket+1) : (k+1)*(maxPacket+1)]
	}
	if haveBacklog {
		if w.queue, err = newBacklog(w.pc); err != nil {
			w.pc.Close()
			return nil, fmt.Errorf("read the receive queue: %w", err)
		}
	}
	if o.portable {
		w.conn = udpbatch.NewPortable(w.pc, in, cfg.BatchSize)
	} else if w.conn, err = udpbatch.New(w.pc, in, cfg.BatchSize); err != nil {
		w.pc.Close()
		return nil, err
	}
	w.codec = newCodec(context.Background(), tr, jar, &w.stats, errLog)
	w.codec.guard = o.guard
	w.codec.calm = calm
	n := w.codec.maxReply()
	slab := make([]byte, cfg.BatchSize*n)
	w.out = make([][]byte, cfg.BatchSize)
	for k := range w.out {
		w.out[k] = slab[k*n : k*n : (k+1)*n]
	}
	return w, nil
}

// rebind returns the address the workers bind after the probe: the host
// as given if it was a wildcard (so they get the same dual-stack socket),
// else the resolved IP, with the resolved port.
func rebind(addr string, bound netip.AddrPort) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if !bound.Addr().IsUnspecified() {
		host = bound.Addr().String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(bound.Port()))), nil
}

// Addr returns the address the sockets are bound to, with the port
// resolved. A dual-stack socket reports the IPv6 unspecified address.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Run serves until ctx is done or Close is called, then closes the
// sockets, waits for the workers to finish the batch in hand and returns
// nil. Socket errors other than closing are counted, logged (rate
// limited) and survived. Run returns an error only if called twice.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("udptracker: Run called twice")
	}
	var wg sync.WaitGroup
	for _, w := range s.workers {
		w.codec.ctx = ctx
		wg.Go(func() { s.serve(w) })
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	s.Close()
	wg.Wait()
	s.log.Info("stopped", "addr", s.addr)
	return nil
}

// Close closes the sockets, which ends Run. It is safe to call more than
// once and concurrently; later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		for _, w := range s.workers {
			s.closeErr = errors.Join(s.closeErr, w.pc.Close())
		}
		close(s.done)
	})
	return s.closeErr
}

// Stats returns the counters summed over all workers. It does not block
// the workers.
func (s *Server) Stats() Stats {
	var st Stats
	for _, w := range s.workers {
		w.stats.addTo(&st)
	}
	if s.kernelBans {
		st.KernelBans = uint64(s.guard.Stats().KernelFilterPrefixes)
	}
	return st
}

// ioBackoff is the pause after a socket error, so a persistent one cannot
// spin a core.
const ioBackoff = time.Millisecond

// serve is one worker's loop; it returns when the socket is closed.
func (s *Server) serve(w *worker) {
	for {
		err := w.serveBatch()
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		w.stats.inc(cReadErrors)
		s.ioLog.Log("socket error", slog.Any("err", err))
		time.Sleep(ioBackoff)
	}
}

// serveBatch reads one batch, answers it and writes the replies in one
// batch.
func (w *worker) serveBatch() error {
	n, err := w.conn.Read()
	if err != nil {
		return err
	}
	now := w.codec.jar.now()
	w.codec.shed = w.behind(n, now)
	q := 0
	for i := range n {
		reply := w.codec.handleAt(w.conn.Source(i), w.conn.Packet(i), w.out[q][:0], now)
		if reply == nil {
			continue
		}
		w.out[q] = reply[:0] // keep a buffer that had to grow
		w.conn.Reply(i, reply)
		q++
	}
	if q > 0 {
		err = w.flush()
	}
	// Each datagram of the batch waited for the whole batch: one clock
	// reading per batch, not per datagram.
	w.stats.req.Observe(w.codec.jar.now().Sub(now), n)
	return err
}

// shedDepth is the backlog at which a worker counts as behind: 64
// datagrams waiting, and shedBytes the same in the kernel's accounting of
// a receive queue (832 bytes a short datagram, Linux 6.1 on amd64,
// measured with SO_MEMINFO; a quarter of the default buffer).
const (
	shedDepth = 64
	shedBytes = shedDepth * 832
)

// behind reports whether the worker, having just read n datagrams, is
// catching up on a backlog: at least shedDepth datagrams were waiting. While
// it is behind, refusals for foreign torrents are shed (dropped
// unanswered), keeping its time for tracked ones.
//
// A full batch is no sign of it: with batch_size = 1 every read fills
// its batch, and taken for pressure that shed every refusal of an idle
// server, so refused clients got silence and retried. A read of
// shedDepth datagrams or more is, since that many were queued. A read
// that returns less than a batch emptied the queue. After a full batch of
// fewer, the queue is read (one getsockopt, SO_MEMINFO): Linux counts
// what is queued, plus up to a quarter of the buffer read since the queue
// last emptied, which it gives back in steps; so shedBytes reported means
// a backlog of at least shedDepth/2 datagrams now or since the queue was
// last empty. Where the queue cannot be read, such a worker never sheds.
//
// Why so eager: measured with warden load --scenario flood (a flood of
// refused announces at about a million datagrams/s, one worker pinned to
// a core), shedding only once the queue was half full, or the backlog had
// lasted a millisecond, left the worker answering up to 100,000 refusals/s
// while the flood filled its queue, and 87-94% of legitimate announces
// were answered, against 98% when every read of 64 shed.
func (w *worker) behind(n int, now time.Time) bool {
	switch {
	case n >= shedDepth:
		return true
	case n < w.batchSize || w.queue == nil:
		w.recheck = 0
		return false
	case w.recheck > 0 && now.Sub(w.checkedAt) < recheckAfter:
		w.recheck-- // full batches in a row: the last reading stands
		return w.wasBehind
	}
	queued, _, err := w.queue.read()
	w.wasBehind = err == nil && queued >= shedBytes // an error: the next read reports a broken socket
	w.recheck, w.checkedAt = recheckReads, now
	return w.wasBehind
}

// A reading of the queue stands for the next recheckReads full batches of
// fewer than shedDepth datagrams, within recheckAfter: with batch_size = 1
// under a flood, a getsockopt per datagram cost a sixth of the legitimate
// announces answered (84% against 92% without it).
const (
	recheckReads = 15
	recheckAfter = time.Millisecond
)

// flush writes the queued replies. A reply the OS refuses (a route or a
// firewall rule against one client) is counted and skipped, so the others
// still go; only a closed socket ends it, with an error that wraps
// net.ErrClosed.
func (w *worker) flush() error {
	for {
		sent, err := w.conn.Flush()
		w.stats.add(cSent, uint64(sent))
		if err == nil {
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		w.stats.inc(cWriteErrors)
	}
}
