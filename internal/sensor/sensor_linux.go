package sensor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"warden/internal/procstat"
	"warden/internal/ratelog"
)

// Ring geometry: blocks of 64 KiB (about 400 packets), handed to the
// sensor when full or blockTimeout after their first packet; the sensor
// looks for full blocks every drainEvery. The default 4 MiB ring is 64
// blocks: at a low rate, where each block leaves after its timeout, the
// sensor may be held up for 1.2 s before the ring overflows; at 500,000
// packets/s, 50 ms.
//
// Draining on a timer rather than waiting in poll(2) is for the cost: a
// blocking system call per block made the Go scheduler hand the
// goroutine's processor to another thread and back each time, some 100
// µs of CPU a wake-up, where a timer's wake-up costs a few. But a timer
// that fires 100 times a second costs something when nothing comes
// (measured: warden serve idle, 0.010 cores with the sensor against 0.002
// without), so after idleDrains empty drains the sensor waits in poll(2)
// instead, at most idleWait at a time, until the kernel hands over a
// block; the first block puts it back on the timer.
const (
	blockBytes   = 64 << 10
	blockTimeout = 20 // ms
	drainEvery   = 10 * time.Millisecond
	idleDrains   = 10
	idleWait     = 100 * time.Millisecond
)

// Sensor is a running sensor: two packet sockets with their rings, and
// the table the counts wait in. Create it with New, connect it with
// ReportTo, SetPorts and SetBanned, run it with Run, stop it by
// cancelling Run's context or with Close.
type Sensor struct {
	cfg  Config
	log  *slog.Logger
	warn *ratelog.Logger // ring drops
	now  func() time.Time

	sink  Sink
	rings [2]*ring      // IPv4, IPv6
	quit  chan struct{} // closed by Close
	// Run's own: the table, the time of the drain in progress, the
	// frame visitor (allocated once) and its counts.
	table     *table
	drainTime time.Time
	visit     func([]byte)
	counted   [numKinds]uint64
	bad       uint64

	syn, dropped          atomic.Uint64
	ringPackets, ringLost atomic.Uint64
	evicted, malformed    atomic.Uint64

	mu      sync.Mutex // guards the fields below and the rings' sockets
	sel     selection
	ports   Ports
	banned  []netip.Prefix
	running bool
	closed  bool
	stopped chan struct{} // closed once the sockets are released
}

// ring is one packet socket and its TPACKET_V3 ring.
type ring struct {
	fd   int
	mem  []byte
	next int // the block to read next
}

// New validates cfg and opens the two packet sockets, with filters that
// accept nothing until SetPorts and SetBanned say what to count. It
// starts nothing. Without CAP_NET_RAW the error wraps fs.ErrPermission
// and says what is missing.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled {
		return nil, errors.New("sensor: not enabled")
	}
	log = log.With("component", "sensor")
	s := &Sensor{
		cfg:     cfg,
		log:     log,
		warn:    ratelog.New(log, slog.LevelWarn, 10*time.Second, nil),
		now:     time.Now,
		table:   newTable(cfg.Sources),
		stopped: make(chan struct{}),
		quit:    make(chan struct{}),
	}
	s.visit = s.count
	var err error
	for i, proto := range []uint16{unix.ETH_P_IP, unix.ETH_P_IPV6} {
		prog, perr := s.sel.filter(i == 1, skfNetOff)
		if perr != nil {
			s.release()
			return nil, perr
		}
		if s.rings[i], err = openRing(proto, cfg.RingBytes, prog); err != nil {
			s.release()
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				return nil, fmt.Errorf("sensor: %w (it needs CAP_NET_RAW: run as root or grant it, see docs/deploy.md; or set evidence.sensor = false)", err)
			}
			return nil, fmt.Errorf("sensor: %w", err)
		}
	}
	log.Info("sensor ready", "ring_bytes", cfg.RingBytes, "sources", len(s.table.slots), "poll", cfg.Poll)
	return s, nil
}

// openRing opens a packet socket for proto (ETH_P_IP or ETH_P_IPV6) on
// every interface, with filter prog and a ring of ringBytes. The socket
// receives nothing until it is bound, which is done last, so no packet
// passes before the filter is in place.
func openRing(proto uint16, ringBytes int, prog []bpf.RawInstruction) (*ring, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	r := &ring{fd: fd}
	fail := func(what string, err error) (*ring, error) {
		r.close()
		return nil, fmt.Errorf("packet socket: %s: %w", what, err)
	}
	if err := attach(fd, prog); err != nil {
		return fail("attach filter", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3", err)
	}
	blocks := ringBytes / blockBytes
	const frame = 1 << 11 // nominal: TPACKET_V3 packs packets of any size
	req := unix.TpacketReq3{
		Block_size:     blockBytes,
		Block_nr:       uint32(blocks),
		Frame_size:     frame,
		Frame_nr:       uint32(blocks * blockBytes / frame),
		Retire_blk_tov: blockTimeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("ring of "+fmt.Sprint(blocks*blockBytes)+" bytes", err)
	}
	if r.mem, err = unix.Mmap(fd, 0, blocks*blockBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("map the ring", err)
	}
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], proto)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: host.Uint16(be[:])}); err != nil {
		return fail("bind", err)
	}
	return r, nil
}

// attach replaces the socket filter of fd with prog.
func attach(fd int, prog []bpf.RawInstruction) error {
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}

func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	unix.Close(r.fd)
}

// status points at the block_status word of block i, which the kernel
// and the sensor hand each other the block through.
func (r *ring) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*blockBytes+blockStatusOff]))
}

// drain walks the blocks the kernel has handed over, at most one lap of
// the ring, gives each back, and returns how many it walked and how many
// of them were malformed.
func (r *ring) drain(visit func([]byte)) (walked int, malformed uint64) {
	blocks := len(r.mem) / blockBytes
	for range blocks {
		st := r.status(r.next)
		if atomic.LoadUint32(st)&unix.TP_STATUS_USER == 0 {
			return walked, malformed
		}
		if _, ok := walkBlock(r.mem[r.next*blockBytes:(r.next+1)*blockBytes], visit); !ok {
			malformed++
		}
		atomic.StoreUint32(st, unix.TP_STATUS_KERNEL)
		r.next = (r.next + 1) % blocks
		walked++
	}
	return walked, malformed
}

// ReportTo makes the sensor report its counts to sink. Call it before Run.
func (s *Sensor) ReportTo(sink Sink) { s.sink = sink }

// SetPorts sets the TCP ports whose SYNs are counted and the UDP ports
// whose datagrams from banned prefixes are, at most MaxPorts each. The
// new filters take effect at once; it does not block on Run.
func (s *Sensor) SetPorts(p Ports) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.updateLocked(p, s.banned); err != nil {
		return err
	}
	s.ports = Ports{TCP: slices.Clone(p.TCP), UDP: slices.Clone(p.UDP)}
	return nil
}

// SetBanned sets the prefixes whose datagrams to the UDP ports are
// counted as dropped in the kernel: the prefixes of the frontends' socket
// filters (limit.Guard.OnFilter hands them over); IPv6 prefixes are
// ignored, at most MaxBanned are taken. It
// copies prefixes and does not block on Run.
func (s *Sensor) SetBanned(prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.updateLocked(s.ports, prefixes); err != nil {
		return err
	}
	s.banned = slices.Clone(prefixes)
	return nil
}

var errClosed = errors.New("sensor: closed")

// updateLocked compiles the filters for p and banned and attaches them.
func (s *Sensor) updateLocked(p Ports, banned []netip.Prefix) error {
	if s.closed {
		return errClosed
	}
	sel, err := newSelection(p, banned)
	if err != nil {
		return err
	}
	for i, r := range s.rings {
		prog, err := sel.filter(i == 1, skfNetOff)
		if err != nil {
			return fmt.Errorf("sensor: compile filter: %w", err)
		}
		if err := attach(r.fd, prog); err != nil {
			return fmt.Errorf("sensor: attach filter: %w", err)
		}
	}
	s.sel = sel
	return nil
}

// Run drains the rings as the kernel fills them and hands the counts to
// the Sink every Config.Poll, until ctx is done or Close is called; then
// it hands over what it has, releases the sockets and returns nil. It
// returns an error if called twice or after Close.
func (s *Sensor) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return errClosed
	case s.running:
		s.mu.Unlock()
		return errors.New("sensor: Run called twice")
	}
	s.running = true
	s.mu.Unlock()
	defer s.release()

	tick := time.NewTicker(drainEvery)
	defer tick.Stop()
	next := s.now().Add(s.cfg.Poll)
	empty := 0 // drains in a row that found no block
	for {
		stopping := false
		if empty >= idleDrains {
			tick.Stop()
			s.waitBlock(min(idleWait, s.cfg.Poll))
			tick.Reset(drainEvery)
			select {
			case <-ctx.Done():
				stopping = true
			case <-s.quit:
				stopping = true
			default:
			}
		} else {
			select {
			case <-ctx.Done():
				stopping = true
			case <-s.quit:
				stopping = true
			case <-tick.C:
			}
		}
		if stopping {
			// The block being filled leaves the kernel after its
			// timeout: wait for it, so that nothing counted is lost.
			time.Sleep(blockTimeout*time.Millisecond + drainEvery)
		}
		now := s.now()
		if s.drain(now) == 0 {
			empty++
		} else {
			empty = 0
		}
		if stopping || !now.Before(next) {
			s.readRingStats()
			s.table.flush(s.sink, now)
			next = now.Add(s.cfg.Poll)
		}
		if stopping {
			return nil
		}
	}
}

// waitBlock waits in poll(2) until a ring holds a block for the sensor,
// or d has passed. Run's sockets stay open while it waits: only Run
// releases them.
func (s *Sensor) waitBlock(d time.Duration) {
	fds := [2]unix.PollFd{
		{Fd: int32(s.rings[0].fd), Events: unix.POLLIN},
		{Fd: int32(s.rings[1].fd), Events: unix.POLLIN},
	}
	unix.Poll(fds[:], int(d/time.Millisecond)) // EINTR or an error: the caller drains and decides
}

// drain counts what both rings hold and returns how many blocks it read.
func (s *Sensor) drain(now time.Time) int {
	s.drainTime = now
	blocks := 0
	for _, r := range s.rings {
		n, m := r.drain(s.visit)
		blocks += n
		if m > 0 {
			s.malformed.Add(m)
		}
	}
	s.syn.Add(s.counted[SYN])
	s.dropped.Add(s.counted[KernelDropped])
	s.counted = [numKinds]uint64{}
	if s.bad > 0 {
		s.malformed.Add(s.bad)
		s.bad = 0
	}
	s.evicted.Store(s.table.evicted)
	return blocks
}

// count is the frame visitor.
func (s *Sensor) count(f []byte) {
	src, kind, n, ok := parseFrame(f, true)
	if !ok {
		s.bad++
		return
	}
	s.counted[kind] += n
	s.table.add(src, kind, n, s.sink, s.drainTime)
}

// readRingStats adds the kernel's counts of packets given to the rings
// and lost for want of room (reading them resets them), and warns of
// losses.
func (s *Sensor) readRingStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readRingStatsLocked()
}

func (s *Sensor) readRingStatsLocked() {
	select {
	case <-s.stopped:
		return // the sockets are gone
	default:
	}
	var lost uint64
	for _, r := range s.rings {
		if r == nil {
			continue
		}
		st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err != nil {
			continue
		}
		s.ringPackets.Add(uint64(st.Packets))
		lost += uint64(st.Drops)
	}
	if lost > 0 {
		s.ringLost.Add(lost)
		s.warn.Log("sensor ring full: packets lost to the counts",
			slog.Uint64("lost", lost), slog.String("fix", "raise evidence.sensor_ring_bytes"))
	}
}

// Stats returns the sensor's counters and reads the kernel's. It does
// not block Run beyond a lock held for two getsockopt calls.
func (s *Sensor) Stats() Stats {
	s.mu.Lock()
	s.readRingStatsLocked()
	st := Stats{TCPPorts: len(s.sel.tcp), UDPPorts: len(s.sel.udp), Banned: len(s.sel.banned)}
	s.mu.Unlock()
	st.SYN, st.KernelDropped = s.syn.Load(), s.dropped.Load()
	st.RingPackets, st.RingDrops = s.ringPackets.Load(), s.ringLost.Load()
	st.Evicted, st.Malformed = s.evicted.Load(), s.malformed.Load()
	if c, err := procstat.ReadTCP(); err == nil {
		st.TCP = &c
	}
	return st
}

// Close stops Run, if it runs, and waits for it to hand over its counts
// and release the sockets. It is safe to call more than once and
// concurrently.
func (s *Sensor) Close() error {
	s.mu.Lock()
	first, running := !s.closed, s.running
	s.closed = true
	s.mu.Unlock()
	if first {
		close(s.quit)
		if !running {
			s.release()
		}
	}
	<-s.stopped
	return nil
}

// release closes the sockets and unmaps the rings, once.
func (s *Sensor) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stopped:
		return
	default:
	}
	s.readRingStatsLocked()
	for _, r := range s.rings {
		if r != nil {
			r.close()
		}
	}
	s.closed = true
	close(s.stopped)
}
