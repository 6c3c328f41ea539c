package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/bittorrent"
)

// The flood scenario (ScenarioFlood) plays two classes at once against one
// tracker: legit peers joining registered torrents at a modest, even rate,
// whose success and latency are what is measured, and a flood of announces
// for unknown torrents from other addresses, as fast as the generator can
// send them or at a fixed rate. The question it answers: does the tracker
// still serve its own users while someone floods it?
//
// This file runs the two classes and reports them; floodlegit.go is the
// legit class, floodudp.go and floodhttp.go the flood.

// FloodReport is the outcome of the flood scenario. The legit class's
// requests are also in Report.Classes (connect and announce/legit), with
// their own counts and latencies.
type FloodReport struct {
	Mode FloodMode `json:"mode,omitempty"` // "" without a flood
	Mix  string    `json:"mix,omitempty"`  // of an HTTP flood (FloodMix)
	// LegitRate is the joins per second asked for; FloodRate the flood's
	// datagrams (UDP) or requests (HTTP) per second: 0 for as many as the
	// generator can send, -1 for no flood.
	LegitRate    float64 `json:"legit_rate"`
	FloodRate    float64 `json:"flood_rate"`
	LegitSources int     `json:"legit_sources"`
	FloodSources int     `json:"flood_sources,omitempty"`

	// LegitPriority is the SCHED_FIFO priority of the process that ran
	// the legit class (Config.LegitRealtime), and LegitCores the share of
	// a core it used; 0 when it ran in the flood's process. LegitShared
	// says that it did while flooding: its latencies then include the
	// generator's own delays. LegitNewConn: a connection per HTTP join.
	LegitPriority int     `json:"legit_priority,omitempty"`
	LegitCores    float64 `json:"legit_cores,omitempty"`
	LegitShared   bool    `json:"legit_shared,omitempty"`
	LegitNewConn  bool    `json:"legit_new_conn,omitempty"`

	Legit LegitReport   `json:"legit"`
	Flood *FloodTraffic `json:"flood,omitempty"` // nil without a flood
}

// LegitReport counts the joins of the legit class: each is a new peer
// announcing "started" for a registered torrent, preceded (UDP) by a
// connect when its source has no valid connection ID, or (HTTP) by a TCP
// connection when its source has none open. Every join due during the
// measured part is counted once as OK, Failures, Timeouts, Bad or NotSent,
// except those in flight when a canceled run stopped waiting.
type LegitReport struct {
	Joins uint64 `json:"joins"` // due during the measured part
	OK    uint64 `json:"ok"`
	// Failures counts refusals: an error reply to the connect or the
	// announce, a failure reason, a TCP connection refused.
	Failures uint64 `json:"failures"`
	// Timeouts counts joins whose connect or announce got no reply within
	// Timeout (or TCP connections not made within it).
	Timeouts uint64 `json:"timeouts"`
	// Bad counts malformed replies.
	Bad uint64 `json:"bad"`
	// NotSent counts joins that could not be sent: a socket error, or too
	// many joins of one source waiting.
	NotSent uint64 `json:"not_sent"`
	// SuccessPct is OK as a percentage of Joins.
	SuccessPct  float64 `json:"success_pct"`
	JoinsPerSec float64 `json:"joins_per_sec"` // offered
	OKPerSec    float64 `json:"ok_per_sec"`
	// Latency is from the moment the generator started a join to its
	// announce reply, the connect or TCP connection included when one was
	// needed, and over HTTP the wait for the source's previous join: what
	// the peer waited. With LegitNewConn it is the join's connect, request
	// and reply. It covers OK and refused joins.
	Latency LatencySummary `json:"latency"`
	// LagP99 and LagMax say how late the generator started joins after
	// they were due (timer wake-ups take up to a millisecond or so).
	// Much more means the generator could not keep the schedule, and the
	// tracker saw fewer or burstier joins than asked for.
	LagP99      time.Duration  `json:"lag_p99_ns"`
	LagMax      time.Duration  `json:"lag_max_ns"`
	TopFailures []MessageCount `json:"top_failures,omitempty"`
}

// GeneratorLagging reports whether the generator started joins so late
// (p99 over 10 ms) that it, not only the tracker, shaped the latencies:
// it lacked CPU.
func (l *LegitReport) GeneratorLagging() bool { return l.LagP99 > 10*time.Millisecond }

// FloodTraffic is what the flood sent during the measured part and what
// came back for it.
type FloodTraffic struct {
	Sent       uint64  `json:"sent"`
	SentPerSec float64 `json:"sent_per_sec"` // the offered rate
	// Replies counts the replies received, RepliesPerSec per second of
	// the measured part: the answered rate.
	Replies       uint64  `json:"replies"`
	RepliesPerSec float64 `json:"replies_per_sec"`
	// Kinds breaks the replies down: "not registered" (an error reply
	// or failure reason saying the torrent is not registered or not
	// authorized), "error (other)" (other refusals), "announce" (a
	// proper announce reply: the unknown torrent was accepted), "other"
	// (anything else); then "none", the requests sent that got no reply.
	Kinds []FloodKind `json:"kinds"`
	// Connects counts the UDP connects sent (valid mode) over the whole
	// run, warm-up included, or the TCP connections attempted during the
	// measured part; ConnectsOK those answered or made.
	Connects   uint64 `json:"connects"`
	ConnectsOK uint64 `json:"connects_ok"`
	// SendErrors counts sends that failed (a batch over UDP, a write
	// over HTTP).
	SendErrors uint64 `json:"send_errors"`
	// TopMessages are the most frequent error messages and failure
	// reasons, and descriptions of the "other" replies.
	TopMessages []MessageCount `json:"top_messages,omitempty"`
	IOErrorMsg  []MessageCount `json:"io_error_messages,omitempty"`
	// Modes breaks an HTTP flood down by the modes of its connections.
	Modes []HTTPModeReport `json:"modes,omitempty"`
}

// HTTPModeReport is what the connections of one mode of the HTTP flood
// did during the measured part (see floodhttp.go for the modes).
type HTTPModeReport struct {
	Mode  string `json:"mode"`
	Conns int    `json:"conns"` // connections of this mode, open at a time
	// Connects counts connections attempted, ConnectsOK those made,
	// ConnectsPerSec those made per second; ConnectFailures those
	// refused or failed, ConnectTimeouts those not made within Timeout.
	Connects        uint64  `json:"connects"`
	ConnectsOK      uint64  `json:"connects_ok"`
	ConnectsPerSec  float64 `json:"connects_per_sec"`
	ConnectFailures uint64  `json:"connect_failures"`
	ConnectTimeouts uint64  `json:"connect_timeouts"`
	// Sent counts requests written whole (the offered load), Replies
	// those answered.
	Sent          uint64  `json:"sent"`
	SentPerSec    float64 `json:"sent_per_sec"`
	Replies       uint64  `json:"replies"`
	RepliesPerSec float64 `json:"replies_per_sec"`
	// Unanswered counts requests in flight when the server closed their
	// connection, Timeouts those with no reply within Timeout.
	Unanswered uint64 `json:"unanswered"`
	Timeouts   uint64 `json:"timeouts"`
	// ServerClosed counts connections the server ended: closed or reset,
	// or (pipeline) a reply saying it would close.
	ServerClosed uint64 `json:"server_closed"`
	// Latency is over the replies: from the request's write (churn: from
	// the start of its connect) to its reply.
	Latency LatencySummary `json:"latency"`
	// Held is, over the idle and partial connections made during the
	// measured part that the server closed, how long it kept them;
	// HeldToEnd counts those still open when FloodHold passed or sending
	// stopped.
	Held      LatencySummary `json:"held"`
	HeldToEnd uint64         `json:"held_to_end"`
	// ServerSaid are the status lines (less "HTTP/1.x") the server sent on
	// held connections before closing them.
	ServerSaid []MessageCount `json:"server_said,omitempty"`
}

// FloodKind is a kind of reply to the flood and how many came.
type FloodKind struct {
	Kind   string  `json:"kind"`
	Count  uint64  `json:"count"`
	PerSec float64 `json:"per_sec"`
}

// floodKind is what a reply to the flood was.
type floodKind uint8

const (
	kindNotRegistered floodKind = iota
	kindErrorOther
	kindAnnounce
	kindOther
	numFloodKinds
)

var floodKindNames = [numFloodKinds]string{"not registered", "error (other)", "announce", "other"}

// refusalWords mark a refusal as "not registered": warden's text, and
// opentracker's for a torrent off its whitelist.
var refusalWords = [][]byte{[]byte("not registered"), []byte("unregistered"), []byte("not authorized")}

// errorKind classifies the message of an error reply or a failure reason.
func errorKind(msg []byte) floodKind {
	for _, w := range refusalWords {
		for i := 0; i+len(w) <= len(msg); i++ {
			if bytes.EqualFold(msg[i:i+len(w)], w) {
				return kindNotRegistered
			}
		}
	}
	return kindErrorOther
}

// floodStats is what one flood goroutine counts.
type floodStats struct {
	sent, sendErrors     uint64
	kinds                [numFloodKinds]uint64
	connects, connectsOK uint64
	msgs                 msgCounter
	// A run of equal messages not yet added to msgs, and their kind:
	// floods get the same reply over and over, and comparing is cheaper
	// than a map lookup and a classification.
	last       msgKey
	lastN      uint64
	lastKind   floodKind
	ioErrors   uint64
	ioErrorMsg msgCounter
}

// refusal counts an error reply or failure reason with message msg.
func (s *floodStats) refusal(msg []byte) {
	s.message(msg, kindErrorOther)
}

// message counts a reply described by msg. Error kinds (kindErrorOther)
// are refined by errorKind.
func (s *floodStats) message(msg []byte, kind floodKind) {
	k := makeMsgKey(msg)
	if s.lastN == 0 || k != s.last {
		s.flushMessages()
		if kind == kindErrorOther {
			kind = errorKind(msg)
		}
		s.last, s.lastKind = k, kind
	}
	s.lastN++
	s.kinds[s.lastKind]++
}

func (s *floodStats) flushMessages() {
	if s.lastN > 0 {
		s.msgs.addN(s.last, s.lastN)
		s.lastN = 0
	}
}

func (s *floodStats) ioError(err error) {
	s.ioErrors++
	s.ioErrorMsg.add([]byte(errText(err)))
}

func (s *floodStats) merge(o *floodStats) {
	o.flushMessages()
	s.sent += o.sent
	s.sendErrors += o.sendErrors
	for i, n := range o.kinds {
		s.kinds[i] += n
	}
	s.connects += o.connects
	s.connectsOK += o.connectsOK
	s.msgs.merge(&o.msgs)
	s.ioErrors += o.ioErrors
	s.ioErrorMsg.merge(&o.ioErrorMsg)
}

func (s *floodStats) report(elapsed time.Duration) *FloodTraffic {
	s.flushMessages()
	secs := elapsed.Seconds()
	per := func(n uint64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	t := &FloodTraffic{
		Sent: s.sent, SentPerSec: per(s.sent),
		Connects: s.connects, ConnectsOK: s.connectsOK, SendErrors: s.sendErrors,
		TopMessages: s.msgs.top(5), IOErrorMsg: s.ioErrorMsg.top(5),
	}
	for k, n := range s.kinds {
		t.Replies += n
		t.Kinds = append(t.Kinds, FloodKind{Kind: floodKindNames[k], Count: n, PerSec: per(n)})
	}
	t.RepliesPerSec = per(t.Replies)
	none := uint64(0)
	if s.sent > t.Replies {
		none = s.sent - t.Replies
	}
	t.Kinds = append(t.Kinds, FloodKind{Kind: "none", Count: none, PerSec: per(none)})
	return t
}

// floodPacer hands out the flood's sends: at most perNs per nanosecond of
// the run, or without limit when perNs is 0. It is shared by the flood's
// goroutines.
type floodPacer struct {
	perNs float64
	taken atomic.Int64
}

func newFloodPacer(rate float64) *floodPacer { return &floodPacer{perNs: rate / 1e9} }

// take returns how many of n sends may go now: n without a limit, else
// those due by now (the first at 0) and not yet taken, at most n.
func (p *floodPacer) take(now int64, n int) int {
	if p.perNs == 0 {
		return n
	}
	due := int64(float64(now)*p.perNs) + 1
	for {
		t := p.taken.Load()
		k := min(int64(n), due-t)
		if k <= 0 {
			return 0
		}
		if p.taken.CompareAndSwap(t, t+k) {
			return int(k)
		}
	}
}

// next returns when the next send is due; 0 without a limit.
func (p *floodPacer) next() int64 {
	if p.perNs == 0 {
		return 0
	}
	return int64(float64(p.taken.Load()) / p.perNs)
}

// pause returns how long a flood goroutine that got nothing from take
// should sleep before asking again: until the next send is due, between
// 50 µs and maxWait.
func (p *floodPacer) pause(now int64) time.Duration {
	return time.Duration(min(max(p.next()-now, int64(50*time.Microsecond)), maxWait))
}

// joinStats counts the legit class's joins (see LegitReport).
type joinStats struct {
	due, ok, failures, timeouts, bad, notSent uint64
	failMsgs                                  msgCounter
	hist                                      Histogram
}

func (j *joinStats) failed(msg []byte, lat int64) {
	j.failures++
	j.failMsgs.add(msg)
	j.hist.Record(time.Duration(lat))
}

func (j *joinStats) succeeded(lat int64) {
	j.ok++
	j.hist.Record(time.Duration(lat))
}

// legitResult is what the legit class counted during the measured part.
type legitResult struct {
	stats workerStats // per request: connect and announce/legit
	joins joinStats
	lag   Histogram // how late joins started
}

func (r *legitResult) report(elapsed time.Duration) LegitReport {
	j := &r.joins
	lr := LegitReport{
		Joins: j.due, OK: j.ok, Failures: j.failures, Timeouts: j.timeouts, Bad: j.bad, NotSent: j.notSent,
		Latency: LatencySummary{
			P50: j.hist.Quantile(0.5), P90: j.hist.Quantile(0.9), P99: j.hist.Quantile(0.99),
			Max: j.hist.Max(), Mean: j.hist.Mean(),
		},
		LagP99: r.lag.Quantile(0.99), LagMax: r.lag.Max(),
		TopFailures: j.failMsgs.top(5),
	}
	if j.due > 0 {
		lr.SuccessPct = 100 * float64(j.ok) / float64(j.due)
	}
	if secs := elapsed.Seconds(); secs > 0 {
		lr.JoinsPerSec = float64(j.due) / secs
		lr.OKPerSec = float64(j.ok) / secs
	}
	return lr
}

// legitJoin is one join: the k-th of the run, due at a time of the run's
// clock and started by the pacer at start (later by the pacer's lag).
type legitJoin struct {
	k          int64
	due, start int64
}

// joinPeer returns the announce of join k: a new peer (peer ID from k, a
// port of its source's own) for one of the legit torrents, in turn, with
// one peer in four a seeder.
func joinPeer(hashes []bittorrent.InfoHash, k int64, port uint16) (ih bittorrent.InfoHash, sp simPeer) {
	ih = hashes[k%int64(len(hashes))]
	copy(sp.id[:], peerIDPrefix)
	v := uint64(k)
	for i := len(sp.id) - 1; i >= len(peerIDPrefix); i-- {
		sp.id[i] = '0' + byte(v%10)
		v /= 10
	}
	sp.port = port
	sp.left = 1 << 30
	if (k/int64(len(hashes)))%4 == 0 {
		sp.left = 0
	}
	sp.key = uint32(k)*2654435761 + 1
	return ih, sp
}

// joinPort returns the port of the n-th peer of a source.
func joinPort(n uint32) uint16 { return uint16(1024 + n%64000) }

// floodPart is one class of the flood scenario, ready to run.
type floodPart interface {
	// run sends until sending stops (Duration, the request budget, ctx),
	// waits for replies up to Timeout, and releases its sockets.
	run(ctx context.Context)
	// close releases the sockets of a part that will not run.
	close()
}

// runFlood is Run for ScenarioFlood. gate, if not nil, is called once
// everything is ready, just before the clock starts; an error from it
// ends the run.
func runFlood(ctx context.Context, cfg *Config, hashes []bittorrent.InfoHash, probe *serverProbe, gate func() error) (Report, error) {
	rs := newRunState(cfg, &population{hashes: hashes, peersPerTorrent: 1, workers: 1})
	rs.server = probe
	rep := Report{Protocol: cfg.Protocol, Scenario: cfg.Scenario, Rate: cfg.LegitRate, Warmup: cfg.Warmup}
	fr := &FloodReport{Mode: cfg.FloodMode, LegitRate: cfg.LegitRate, FloodRate: cfg.FloodRate}
	flooding := cfg.FloodRate != FloodOff
	if !flooding {
		fr.Mode = ""
	}

	legitOn := cfg.LegitRate > 0
	var child *legitChild
	if legitOn && cfg.LegitRealtime > 0 {
		// The legit class runs in a process of its own; this one floods.
		var err error
		if child, err = startLegitChild(ctx, cfg); err != nil {
			return Report{}, err
		}
		legitOn = false
		fr.LegitPriority = cfg.LegitRealtime
		fr.LegitSources = prefixSize(cfg.LegitSources)
	}
	var legitAddrs, floodAddrs []netip.Addr
	if legitOn {
		legitAddrs, fr.LegitSources = sourceAddrs(cfg.LegitSources, prefixSize(cfg.LegitSources))
	}
	if flooding {
		floodAddrs, fr.FloodSources = sourceAddrs(cfg.FloodSources, prefixSize(cfg.FloodSources))
	}
	rep.Sources = fr.LegitSources + fr.FloodSources
	pacer := newFloodPacer(max(cfg.FloodRate, 0))

	var (
		legit   legitClass = noLegit{}
		flood   floodClass
		closeMe []floodPart
	)
	fail := func(err error) (Report, error) {
		for _, p := range closeMe {
			p.close()
		}
		if child != nil {
			err = errors.Join(err, child.fail(errors.New("stopped")))
		}
		return Report{}, err
	}
	switch cfg.Protocol {
	case UDP:
		target, err := udpTargetAddr(ctx, cfg, sourcesOf(cfg))
		if err != nil {
			return fail(err)
		}
		rep.Target = target.String()
		if legitOn {
			l, err := newLegitUDP(rs, target, legitAddrs)
			if err != nil {
				return fail(err)
			}
			legit, closeMe = l, append(closeMe, l)
		}
		if flooding {
			f, err := newFloodUDP(rs, target, floodAddrs, pacer)
			if err != nil {
				return fail(err)
			}
			flood, closeMe = f, append(closeMe, f)
		}
	case HTTP:
		t, err := httpTargetAddr(ctx, cfg, sourcesOf(cfg))
		if err != nil {
			return fail(err)
		}
		rep.Target = cfg.HTTP + " (" + t.addr.String() + ")"
		if legitOn {
			l, err := newLegitHTTP(rs, t, legitAddrs)
			if err != nil {
				return fail(err)
			}
			legit, closeMe = l, append(closeMe, l)
		}
		if flooding {
			f, err := newFloodHTTP(rs, t, floodAddrs, pacer)
			if err != nil {
				return fail(err)
			}
			flood, closeMe = f, append(closeMe, f)
		}
	}

	// The legit class must be served on time while the flood keeps a core
	// busy: with a single P, goroutines woken by the network or a timer
	// wait for the flood goroutine's preemption (up to 10 ms) and the
	// latencies measured would be the generator's. A second P leaves the
	// sharing of the core to the kernel, which wakes a sleeping thread at
	// once.
	if flooding && legitOn && runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}

	if gate != nil {
		if err := gate(); err != nil {
			return fail(err)
		}
	}
	if child != nil {
		if err := child.start(); err != nil {
			return fail(err)
		}
	}
	rs.start()
	var wg sync.WaitGroup
	wg.Go(func() { legit.run(ctx) })
	if flood != nil {
		wg.Go(func() { flood.run(ctx) })
	}
	var childRep *Report
	var childErr error
	if child != nil {
		// The child ends its run by itself, at about the time this one
		// ends; waiting for it also keeps a run without a flood going
		// for as long as the child's.
		wg.Go(func() { childRep, childErr = child.report() })
	}
	wg.Wait()
	rs.finish(&rep)
	if childErr != nil {
		return Report{}, childErr
	}

	if childRep != nil {
		rep.Classes, rep.Unmatched = childRep.Classes, childRep.Unmatched
		rep.IOErrors, rep.IOErrorMsg = childRep.IOErrors, childRep.IOErrorMsg
		rep.GeneratorCPU += childRep.GeneratorCPU
		if rep.Elapsed > 0 {
			rep.GeneratorCores = rep.GeneratorCPU.Seconds() / rep.Elapsed.Seconds()
		}
		fr.Legit = childRep.Flood.Legit
		fr.LegitCores = childRep.GeneratorCores
	} else {
		res := legit.result()
		rep.Classes = buildReport(&res.stats, rep.Elapsed)
		rep.Unmatched = reasons(&res.stats.unmatched)
		rep.IOErrors = res.stats.ioErrors
		rep.IOErrorMsg = res.stats.ioErrorMsg.top(5)
		fr.Legit = res.report(rep.Elapsed)
		fr.LegitShared = flooding && legitOn
	}
	fr.LegitNewConn = cfg.LegitNewConn
	if flood != nil {
		fr.Flood = flood.stats().report(rep.Elapsed)
		if h, ok := flood.(*floodHTTP); ok {
			fr.Flood.Modes = h.modeReports(rep.Elapsed)
			fr.Mix = cfg.FloodMix.String()
		}
	}
	rep.Flood = fr
	return rep, nil
}

// legitClass is the legit class of the flood scenario.
type legitClass interface {
	floodPart
	result() *legitResult // after run
}

// noLegit is the legit class when there is none (LegitRate 0); the flood
// alone then decides when the run ends.
type noLegit struct{}

func (noLegit) close()                  {}
func (noLegit) result() *legitResult    { return new(legitResult) }
func (noLegit) run(ctx context.Context) {}

// sourcesOf returns the family-giving sources of a flood run: the legit
// ones, or the flood's without a legit class.
func sourcesOf(cfg *Config) netip.Prefix {
	if cfg.LegitRate > 0 {
		return cfg.LegitSources
	}
	return cfg.FloodSources
}

// floodClass is the flood of the flood scenario.
type floodClass interface {
	floodPart
	stats() *floodStats // after run
}

// udpTargetAddr returns the address of cfg.UDP, resolving a host name
// (only with AllowRemote) in the family of sources.
func udpTargetAddr(ctx context.Context, cfg *Config, sources netip.Prefix) (netip.AddrPort, error) {
	t, err := parseUDPTarget(cfg.UDP, cfg.AllowRemote)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if t.host != "" {
		return resolve(ctx, t.host, t.port, sources)
	}
	return t.AddrPort, nil
}

// httpTargetAddr returns cfg.HTTP parsed, its address resolved.
func httpTargetAddr(ctx context.Context, cfg *Config, sources netip.Prefix) (httpTarget, error) {
	t, err := parseHTTPTarget(cfg.HTTP, cfg.AllowRemote)
	if err != nil {
		return httpTarget{}, err
	}
	if !t.addr.IsValid() {
		if t.addr, err = resolve(ctx, t.name, t.port, sources); err != nil {
			return httpTarget{}, err
		}
	}
	return t, nil
}

// sleepUntil waits on t until the run-relative time until, or until ctx
// is done; it reports false if ctx is done.
func sleepUntil(ctx context.Context, rs *runState, t *time.Timer, until int64) bool {
	d := time.Duration(until - rs.now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}
