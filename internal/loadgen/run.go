// Package loadgen is warden's load generator: it plays many BitTorrent
// clients against a tracker over UDP (BEP 15) or HTTP (BEP 3, 23, 48) and
// measures what comes back. It checks every reply against its request
// (action, transaction ID, length for the address family, interval,
// bencoding, failure reasons) and reports, per kind of request, how many
// were answered, refused, malformed or lost, how fast, and with which
// latency. Its flood scenario (ScenarioFlood) measures how a tracker
// serves legit peers while a flood of announces for unknown torrents hits
// it.
//
// The package owns the client side of both protocols and nothing of the
// server: it imports only bittorrent and bencode from warden. Every run is
// bounded in time (Duration plus Timeout) and in requests (MaxRequests), and
// refuses targets outside loopback unless Config.AllowRemote is set.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Why sending stopped.
const (
	stopDuration int32 = iota
	stopBudget
	stopCanceled
)

var stopNames = [...]string{"duration", "max-requests", "canceled"}

// runState is what the workers of one run share. Everything but the
// atomics is set before they start and read-only after.
type runState struct {
	cfg       *Config
	pop       *population
	base      time.Time // times below are nanoseconds since base
	warmupEnd int64
	stopSend  int64
	timeout   int64
	ratePerNs float64 // per worker; 0 = unlimited
	burst     float64 // most tokens a worker may save up
	gso       bool    // UDP workers may use GSO where the kernel has it

	remaining atomic.Int64 // requests left in MaxRequests
	stopAt    atomic.Int64 // when sending stopped early; 0 if it did not
	stopWhy   atomic.Int32
	stopped   chan struct{} // closed when sending stops early
	done      chan struct{} // closed when the workers have returned
	cpu       chan time.Duration
	server    *serverProbe // nil without Config.ServerPID
	machine   *MachineReport
}

func newRunState(cfg *Config, pop *population) *runState {
	rs := &runState{
		cfg: cfg, pop: pop,
		warmupEnd: int64(cfg.Warmup),
		stopSend:  int64(cfg.Warmup + cfg.Duration),
		timeout:   int64(cfg.Timeout),
		gso:       !cfg.NoGSO,
	}
	rs.remaining.Store(cfg.MaxRequests)
	rs.stopped = make(chan struct{})
	rs.done = make(chan struct{})
	rs.cpu = make(chan time.Duration, 1)
	if cfg.Rate > 0 {
		perWorker := cfg.Rate / float64(cfg.Workers)
		rs.ratePerNs = perWorker / 1e9
		rs.burst = min(max(1, perWorker/100), udpBatch) // 10 ms worth
	}
	return rs
}

// start sets the run's clock going and starts the samplers: the CPU time
// of the process, the server's and the machine's over the measured part of
// the run, and the server's memory. finish reports them.
func (rs *runState) start() {
	rs.base = time.Now()
	if rs.server != nil {
		go rs.server.watch()
	}
	go rs.sampleCPU()
}

// finish tells the samplers that the workers have returned and fills in
// what the run's state knows of rep: the measured time, why sending
// stopped, and the CPU used by the generator and the server.
func (rs *runState) finish(rep *Report) {
	close(rs.done)
	cpu := <-rs.cpu
	rep.Elapsed = rs.cfg.Duration
	rep.StoppedBy = stopNames[stopDuration]
	if at := rs.stopAt.Load(); at > 0 && at < rs.stopSend {
		rep.Elapsed = time.Duration(max(0, at-rs.warmupEnd))
		rep.StoppedBy = stopNames[rs.stopWhy.Load()]
	}
	rep.GOMAXPROCS, rep.CPUs = runtime.GOMAXPROCS(0), runtime.NumCPU()
	if cpu >= 0 && rep.Elapsed > 0 {
		rep.GeneratorCPU = cpu
		rep.GeneratorCores = cpu.Seconds() / rep.Elapsed.Seconds()
	}
	if rs.server != nil {
		rep.Server = rs.server.stop(rep.Elapsed)
	}
	rep.Machine = rs.machine
}

func (rs *runState) sampleCPU() {
	wait := func(until int64) bool {
		t := time.NewTimer(time.Until(rs.base.Add(time.Duration(until))))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-rs.stopped:
		case <-rs.done:
		}
		return false
	}
	if !wait(rs.warmupEnd) {
		rs.cpu <- -1
		return
	}
	c0, ok0 := processCPU()
	m0, merr0 := readCPUTimes()
	if rs.server != nil {
		rs.server.markCPU(false)
	}
	wait(rs.stopSend)
	c1, ok1 := processCPU()
	m1, merr1 := readCPUTimes()
	if rs.server != nil {
		rs.server.markCPU(true)
	}
	if merr0 == nil && merr1 == nil {
		rs.machine = machineReport(m0, m1) // read by finish after <-rs.cpu
	}
	if !ok0 || !ok1 {
		rs.cpu <- -1
		return
	}
	rs.cpu <- c1 - c0
}

func (rs *runState) now() int64 { return int64(time.Since(rs.base)) }

// reserve takes up to n requests from the budget and returns how many it
// got; 0 means the budget is spent.
func (rs *runState) reserve(n int, now int64) int {
	left := rs.remaining.Add(-int64(n))
	if left <= 0 {
		rs.stopSending(now, stopBudget)
	}
	if left >= 0 {
		return n
	}
	return int(max(0, int64(n)+left))
}

func (rs *runState) budgetSpent() bool { return rs.remaining.Load() <= 0 }

// stopSending records the first early stop.
func (rs *runState) stopSending(now int64, why int32) {
	if rs.stopAt.CompareAndSwap(0, max(now, 1)) {
		rs.stopWhy.Store(why)
		close(rs.stopped)
	}
}

// Run loads the target described by cfg and reports what it measured. It
// returns a *confkey.Error if cfg is invalid, and an error if the hashes file
// cannot be read, ServerPID's /proc entries cannot be read, a name cannot
// be resolved or a source address cannot be bound; trouble with the target itself (refusals, silence, garbage) is
// counted in the Report, not returned.
//
// Run blocks for Warmup + Duration, plus up to Timeout for the replies in
// flight, or less if MaxRequests is reached first. When ctx is done it stops
// within about 100 ms and returns what it has counted with StoppedBy
// "canceled"; requests still in flight then are in no count but Sent.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	hashes, err := loadHashes(&cfg)
	if err != nil {
		return Report{}, err
	}
	var probe *serverProbe
	if cfg.ServerPID != 0 {
		if probe, err = newServerProbe(cfg.ServerPID); err != nil {
			return Report{}, err
		}
	}
	if cfg.Scenario == ScenarioFlood {
		return runFlood(ctx, &cfg, hashes, probe, nil)
	}
	pop := &population{hashes: hashes, peersPerTorrent: cfg.PeersPerTorrent, workers: cfg.Workers}
	rs := newRunState(&cfg, pop)
	rs.server = probe
	rep := Report{
		Protocol: cfg.Protocol, Scenario: cfg.Scenario, Workers: cfg.Workers,
		Rate: cfg.Rate, Warmup: cfg.Warmup,
	}

	var run func() (*workerStats, error)
	switch cfg.Protocol {
	case UDP:
		rep.Window = cfg.Window
		run, err = prepareUDP(ctx, rs, &rep)
	case HTTP:
		run, err = prepareHTTP(ctx, rs, &rep)
	}
	if err != nil {
		return Report{}, err
	}
	total, err := run()
	rs.finish(&rep)
	if err != nil {
		return Report{}, err
	}
	rep.Classes = buildReport(total, rep.Elapsed)
	rep.Unmatched = reasons(&total.unmatched)
	rep.IOErrors = total.ioErrors
	rep.IOErrorMsg = total.ioErrorMsg.top(5)
	return rep, nil
}

// resolve returns the address of a target that names a host, choosing the
// family of the sources if they are set. Only AllowRemote lets a name other
// than localhost get this far.
func resolve(ctx context.Context, host string, port uint16, sources netip.Prefix) (netip.AddrPort, error) {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !sources.IsValid() || a.Is4() == sources.Addr().Is4() {
			return netip.AddrPortFrom(a, port), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("resolve %s: no address of the sources' family", host)
}

// sourceAddrs returns the address each of n workers binds to: the usable
// addresses of p in order (without the first and last of a range of four
// or more), starting over when they run out. It returns nil for the zero
// Prefix, and the number of distinct addresses.
func sourceAddrs(p netip.Prefix, n int) ([]netip.Addr, int) {
	if !p.IsValid() {
		return nil, 0
	}
	p = p.Masked()
	first := p.Addr()
	hostBits := first.BitLen() - p.Bits()
	if hostBits >= 2 {
		first = first.Next() // not the network address
	}
	out := make([]netip.Addr, n)
	distinct, wrapped := 0, false
	a := first
	for i := range out {
		out[i] = a
		if !wrapped {
			distinct++
		}
		a = a.Next()
		if !p.Contains(a) || hostBits >= 2 && !p.Contains(a.Next()) {
			a, wrapped = first, true
		}
	}
	return out, distinct
}

func prepareUDP(ctx context.Context, rs *runState, rep *Report) (func() (*workerStats, error), error) {
	cfg := rs.cfg
	t, err := parseUDPTarget(cfg.UDP, cfg.AllowRemote)
	if err != nil {
		return nil, err
	}
	target := t.AddrPort
	if t.host != "" {
		if target, err = resolve(ctx, t.host, t.port, cfg.Sources); err != nil {
			return nil, err
		}
	}
	rep.Target = target.String()
	srcs, distinct := sourceAddrs(cfg.Sources, cfg.Workers)
	rep.Sources = distinct
	network := "udp4"
	if target.Addr().Is6() {
		network = "udp6"
	}
	raddr := net.UDPAddrFromAddrPort(target)
	workers := make([]*udpWorker, cfg.Workers)
	closeAll := func() {
		for _, w := range workers {
			if w != nil {
				w.conn.Close()
			}
		}
	}
	for i := range workers {
		var laddr *net.UDPAddr
		if srcs != nil {
			laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(srcs[i], 0))
		}
		c, err := net.DialUDP(network, laddr, raddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("open UDP socket %d: %w", i, err)
		}
		// Best effort: the kernel caps these at net.core.[rw]mem_max.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		if workers[i], err = newUDPWorker(i, rs, c, target.Addr().Is6()); err != nil {
			c.Close()
			closeAll()
			return nil, fmt.Errorf("open UDP socket %d: %w", i, err)
		}
	}
	return func() (*workerStats, error) {
		rs.start()
		deadline := rs.base.Add(time.Duration(rs.stopSend + rs.timeout + int64(time.Second)))
		for _, w := range workers {
			_ = w.conn.SetWriteDeadline(deadline)
		}
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { w.loop(ctx) })
		}
		wg.Wait()
		total := new(workerStats)
		for _, w := range workers {
			total.merge(&w.stats)
		}
		return total, nil
	}, nil
}

// errText turns a socket error into a short text that does not vary with
// addresses and ports, so equal causes are counted together.
func errText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return err.Error()
}
