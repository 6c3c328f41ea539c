package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/asn"
	"warden/internal/bittorrent"
	"warden/internal/ratelog"
	"warden/internal/sensor"
	"warden/internal/topk"
)

// Episodes turns what the frontends and the sensor report into abuse
// episodes, in fixed memory: a table of sources (see episode_table.go)
// and at most MaxOpen open episodes, each with bounded samples. It
// implements sensor.Sink; the frontends reach Knock through adapters in
// cmd/warden.
//
// Counting is exact: every event is added to its source's and its
// prefix's counts for the current second, and to their episodes' counts
// if they have one open. Only the samples of an episode (hashes, clients,
// User-Agents, ports) are sampled, and only above detailExact events a
// second: then one event in detailEvery is taken, weighed detailEvery.
//
// Knock and Sensed never block on I/O or allocate (once a User-Agent seen
// in an episode's sample has been copied); they take two spinlocks and,
// for a source with an episode open, its mutex. Run writes the records
// (an Appender, the Log) and raises alerts, off the request path.
type Episodes struct {
	cfg  EpisodeConfig
	tab  table
	eps  []episode
	need int // popcount of a prefix's source bitmap for PrefixSources

	out        Appender
	alerts     Alerter
	attrib     *asn.DB
	registered func(bittorrent.InfoHash) bool
	log        *slog.Logger
	errLog     *ratelog.Logger
	now        func() time.Time
	hashSeed   maphash.Seed

	mu     sync.Mutex // guards the fields below
	free   []uint32   // free episode slots
	recent []*Episode // closed episodes, oldest first, at most maxRecent

	notify chan struct{} // an episode opened: Run writes it now

	opened, closed, untracked, full atomic.Uint64
	records, ticks, recordErrors    atomic.Uint64
	closeOnce                       sync.Once
}

var _ sensor.Sink = (*Episodes)(nil)

// Appender takes records: the Log. It must not block.
type Appender interface {
	Append(ctx context.Context, r Record) error
}

// Alerter is told of an episode that opened (EventOpened) or escalated
// (EventEscalated), at most once per AlertInterval per episode. It must
// not block: Run calls it.
type Alerter interface {
	Alert(event string, ep *Episode)
}

// EpisodeDeps are what an Episodes reports to and reads.
type EpisodeDeps struct {
	// Log receives the episode records; nil writes none.
	Log Appender
	// Alerts is told of openings and escalations; nil for none.
	Alerts Alerter
	// Attribution names the network of a source; nil for none.
	Attribution *asn.DB
	// Registered reports whether an info hash is in the registry; nil
	// counts none as registered. It must not block or allocate.
	Registered func(bittorrent.InfoHash) bool
	// Logger, if not nil, gets lifecycle lines and (rate-limited) errors.
	Logger *slog.Logger
}

// Intervals of the writer.
const (
	// RecordInterval is the shortest time between two records of an open
	// episode after its first; AlertInterval between two alerts.
	RecordInterval = 10 * time.Second
	AlertInterval  = 10 * time.Second
	// TickInterval is about the time between two ticks of an open episode
	// that receives requests (see EpisodeTick): with the log's flush, it
	// bounds what a kill -9 loses of an episode to about half a second.
	TickInterval = 250 * time.Millisecond
	writeEvery   = 250 * time.Millisecond
)

// Bounds of an episode's samples, and of what is remembered.
const (
	maxBuckets       = 600 // of the timeline
	sampleHashes     = 32
	sampleClients    = 16
	sampleUAs        = 8
	samplePorts      = 16
	maxUALen         = 200
	maxRecent        = 256 // closed episodes kept for the API
	detailExact      = 256 // events a second taken into the samples whole
	detailEvery      = 16  // above that, one in this many, weighed so
	maxPrefixSources = 64
	hllBits          = 8
)

// NewEpisodes returns an aggregator for cfg, whose rate thresholds must
// be set (see EpisodeConfig.WithGuardRates). It allocates the table and
// every episode now. It starts nothing: call Run.
func NewEpisodes(cfg EpisodeConfig, deps EpisodeDeps) (*Episodes, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RatePerSec == 0 || cfg.PrefixRatePerSec == 0 {
		return nil, errors.New("evidence: episode rate thresholds not set (EpisodeConfig.WithGuardRates)")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "episodes")
	e := &Episodes{
		cfg:        cfg,
		tab:        newTable(cfg.TableBytes),
		eps:        make([]episode, cfg.MaxOpen),
		need:       bitmapNeed(cfg.PrefixSources),
		out:        deps.Log,
		alerts:     deps.Alerts,
		attrib:     deps.Attribution,
		registered: deps.Registered,
		log:        log,
		errLog:     ratelog.New(log, slog.LevelError, time.Minute, nil),
		now:        time.Now,
		hashSeed:   maphash.MakeSeed(),
		notify:     make(chan struct{}, 1),
	}
	e.free = make([]uint32, 0, cfg.MaxOpen)
	for i := cfg.MaxOpen - 1; i >= 0; i-- {
		e.eps[i].init()
		e.free = append(e.free, uint32(i))
	}
	return e, nil
}

// bitmapNeed is the expected popcount of a 32-bit bitmap after s distinct
// sources set one random bit each (linear counting), rounded up.
func bitmapNeed(s int) int {
	return int(math.Ceil(32 * (1 - math.Exp(-float64(s)/32))))
}

// Knock counts one request. It does not block or allocate (see
// Episodes); k is not kept.
func (e *Episodes) Knock(k *Knock, now time.Time) { e.add(k, 1, now) }

// Sensed implements sensor.Sink: n SYNs or kernel drops from src.
func (e *Episodes) Sensed(src netip.Addr, kind sensor.Kind, n uint64, now time.Time) {
	k := Knock{Src: src, Kind: ReqSYN}
	if kind == sensor.KernelDropped {
		k.Kind = ReqKernelDropped
	}
	e.add(&k, n, now)
}

// add counts n events of k at now in the table and, for a key with an
// episode open, in the episode; it opens episodes whose threshold the
// events cross.
func (e *Episodes) add(k *Knock, n uint64, now time.Time) {
	if n == 0 {
		return
	}
	src := k.Src.Unmap().WithZone("")
	if !src.IsValid() {
		return
	}
	sec, ns := uint32(now.Unix()), uint32(now.Nanosecond())
	rs, rp := e.tab.refs(src)
	ss, sp := &e.tab.sets[rs.idx], &e.tab.sets[rp.idx]
	switch {
	case rs.idx == rp.idx:
		ss.lock()
	case rs.idx < rp.idx:
		ss.lock()
		sp.lock()
	default:
		sp.lock()
		ss.lock()
	}
	var epS, epP uint32
	if w := ss.slot(rs.tag, sec); w >= 0 {
		t := &ss.e[w]
		t.roll(sec, ns)
		t.count(k, n)
		if epS = t.ep; epS == 0 {
			if kind, why := e.crossedSource(t, k); kind != "" {
				epS = e.open(t, src, false, rs, kind, why, k, n, now)
			}
		}
	} else {
		e.untracked.Add(1)
	}
	if w := sp.slot(rp.tag, sec); w >= 0 {
		t := &sp.e[w]
		t.roll(sec, ns)
		t.count(k, n)
		t.addrs |= 1 << (rs.h >> 59)
		if epP = t.ep; epP == 0 {
			if kind, why := e.crossedPrefix(t); kind != "" {
				epP = e.open(t, src, true, rp, kind, why, k, n, now)
			}
		}
	} else {
		e.untracked.Add(1)
	}
	ss.unlock()
	if rs.idx != rp.idx {
		sp.unlock()
	}
	if epS != 0 {
		e.record(epS, k, n, now, sec)
	}
	if epP != 0 {
		e.record(epP, k, n, now, sec)
	}
}

// A reason says which threshold opened an episode: n events of what in
// one second against the setting key's limit. It is written out only
// when the episode is, so that crossing a threshold allocates nothing.
type reason struct {
	what, key string
	n, limit  int
}

func (r reason) String() string {
	if r.key == "" {
		return r.what
	}
	return fmt.Sprintf("%d %s in one second; threshold evidence.%s = %d", r.n, r.what, r.key, r.limit)
}

// crossedSource returns the kind of episode a source's window opens, and
// why, or "".
func (e *Episodes) crossedSource(t *tentry, k *Knock) (string, reason) {
	c := &e.cfg
	switch {
	case k.Action == ActBanned:
		return EpisodeBan, reason{what: "banned by the guard"}
	case k.Kind == ReqKernelDropped:
		return EpisodeBan, reason{what: "banned: datagrams dropped in the kernel"}
	case int(t.refused) >= c.RefusalsPerSec:
		return EpisodeRefusals, reason{"refusals", "refusals_per_sec", int(t.refused), c.RefusalsPerSec}
	case int(t.syns()) >= c.SYNPerSec:
		return EpisodeSYN, reason{"SYNs", "syn_per_sec", int(t.syns()), c.SYNPerSec}
	case int(min(t.n, maxThreshold)) > c.RatePerSec:
		return t.dominant(), reason{"requests", "rate_per_sec", int(t.n), c.RatePerSec}
	}
	return "", reason{}
}

// crossedPrefix is crossedSource for a prefix, which needs PrefixSources
// addresses in the window.
func (e *Episodes) crossedPrefix(t *tentry) (string, reason) {
	c := &e.cfg
	if bits.OnesCount32(t.addrs) < e.need {
		return "", reason{}
	}
	switch {
	case int(t.refused) >= c.PrefixRefusalsPerSec:
		return EpisodeRefusals, reason{"refusals from many addresses", "prefix_refusals_per_sec", int(t.refused), c.PrefixRefusalsPerSec}
	case int(min(t.n, maxThreshold)) > c.PrefixRatePerSec:
		return t.dominant(), reason{"requests from many addresses", "prefix_rate_per_sec", int(t.n), c.PrefixRatePerSec}
	}
	return "", reason{}
}

// open starts an episode for the key r whose window t crossed a
// threshold, seeded with the window's counts but for the n events of k
// being added, which the caller records next. It returns the episode's
// reference for t.ep, or 0 if MaxOpen are open. The caller holds t's set.
func (e *Episodes) open(t *tentry, src netip.Addr, prefix bool, r keyRef, kind string, why reason, k *Knock, n uint64, now time.Time) uint32 {
	e.mu.Lock()
	if len(e.free) == 0 {
		e.mu.Unlock()
		e.full.Add(1)
		return 0
	}
	slot := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	e.mu.Unlock()

	ep := &e.eps[slot]
	ep.mu.Lock()
	ep.reset()
	ep.gen++
	ep.open = true
	ep.key = r
	ep.prefix = prefix
	if prefix {
		ep.src = prefixOf(src)
	} else {
		ep.src = sourceOf(src)
	}
	ep.kind, ep.why = kind, why
	ep.opened = now
	ep.first = time.Unix(now.Unix(), int64(t.first)).UTC()
	if ep.first.After(now) {
		ep.first = now
	}
	ep.last = ep.first
	// Seed with the window, but for the events the caller records.
	vi := combo(k.Kind, k.Verified)
	for c, v := range t.combos {
		cnt := uint64(v)
		if c == vi {
			cnt -= min(cnt, n)
		}
		ep.req[c/2][c%2] += cnt
		ep.total += cnt
	}
	ep.act[ActRefused] = uint64(t.refused)
	ep.act[ActLimited] = uint64(t.limited)
	if k.Action == ActRefused || k.Action == ActLimited {
		ep.act[k.Action] -= min(ep.act[k.Action], n)
	}
	ep.curSec, ep.curN = now.Unix(), ep.total
	ep.tlStart, ep.bucketSec = now.Unix(), 1
	ref := slot + 1 | uint32(ep.gen)<<16
	ep.mu.Unlock()
	t.ep = ref
	e.opened.Add(1)
	select {
	case e.notify <- struct{}{}:
	default:
	}
	return ref
}

// sourceOf is the episode source of an address: itself, or an IPv6
// address's /64.
func sourceOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	return netip.PrefixFrom(a, 64).Masked()
}

// prefixOf is an address's prefix: its IPv4 /24 or IPv6 /48.
func prefixOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 24).Masked()
	}
	return netip.PrefixFrom(a, 48).Masked()
}

// record adds n events of k to the episode ref names, if it is still
// the one open in its slot.
func (e *Episodes) record(ref uint32, k *Knock, n uint64, now time.Time, sec uint32) {
	ep := &e.eps[ref&0xffff-1]
	ep.mu.Lock()
	if ep.open && uint16(ep.gen) == uint16(ref>>16) {
		ep.add(e, k, n, now)
	}
	ep.mu.Unlock()
}

// episode is one slot of the fixed set of open episodes.
type episode struct {
	mu      sync.Mutex // guards every field
	gen     uint16     // counts the episodes the slot held
	hashes  *topk.Sketch[bittorrent.InfoHash]
	clients *topk.Sketch[[8]byte]
	uas     *topk.Sketch[string]
	ports   *topk.Sketch[uint16]
	epData  // zeroed for each episode
}

// epData is an episode's state but for its sketches.
type epData struct {
	open   bool
	key    keyRef // its key in the table
	prefix bool
	src    netip.Prefix
	kind   string
	why    reason
	opened time.Time
	first  time.Time
	last   time.Time

	req   [numReqKinds][2]uint64 // [kind][verified]
	total uint64
	act   [numActions]uint64
	kdrop uint64 // kernel drops

	// The timeline: buckets of bucketSec seconds from tlStart; the
	// current second's count is curN until the next second begins.
	tlStart, bucketSec int64
	buckets            [maxBuckets]uint64
	nb                 int
	curSec             int64
	curN, peak         uint64

	seen    hll // distinct hashes
	regd    hll // distinct registered hashes
	lastUA  string
	sampSec int64
	sampN   uint32

	// The writer's state.
	id          string
	attributed  bool
	info        asn.Info
	attribFound bool
	written     bool
	dirty       bool
	lastRecord  time.Time
	tickDirty   bool      // events since the last record or tick
	tickFrom    int64     // the timeline bucket the next tick starts at
	lastTick    time.Time // of the last record or tick
	lastAlert   time.Time
	alertPeak   uint64
	alertActs   uint8 // bitmap of the actions seen at the last alert
}

func (ep *episode) init() {
	ep.hashes = topk.New[bittorrent.InfoHash](sampleHashes)
	ep.clients = topk.New[[8]byte](sampleClients)
	ep.uas = topk.New[string](sampleUAs)
	ep.ports = topk.New[uint16](samplePorts)
}

// reset empties a slot for a new episode, keeping its sketches' memory.
func (ep *episode) reset() {
	ep.hashes.Reset()
	ep.clients.Reset()
	ep.uas.Reset()
	ep.ports.Reset()
	ep.epData = epData{}
}

// add counts n events of k at now. The caller holds ep.mu.
func (ep *episode) add(e *Episodes, k *Knock, n uint64, now time.Time) {
	v := 0
	if k.Verified {
		v = 1
	}
	if k.Kind < numReqKinds {
		ep.req[k.Kind][v] += n
	}
	ep.total += n
	if k.Action < numActions {
		ep.act[k.Action] += n
	}
	if k.Kind == ReqKernelDropped {
		ep.kdrop += n
	}
	if now.After(ep.last) {
		ep.last = now
	}
	ep.tick(now.Unix(), n)
	ep.dirty, ep.tickDirty = true, true
	if len(k.Hashes) == 0 && !k.HasPeerID && k.Port == 0 && k.UserAgent == "" {
		return
	}
	for _, ih := range k.Hashes {
		h := maphash.Comparable(e.hashSeed, ih)
		ep.seen.add(h)
		if e.registered != nil && e.registered(ih) {
			ep.regd.add(h)
		}
	}
	w := ep.weight(now.Unix())
	if w == 0 {
		return
	}
	for _, ih := range k.Hashes {
		ep.hashes.ObserveN(ih, w, now)
	}
	if k.HasPeerID {
		ep.clients.ObserveN([8]byte(k.PeerID[:8]), w, now)
	}
	if k.Port != 0 {
		ep.ports.ObserveN(k.Port, w, now)
	}
	if ua := k.UserAgent; ua != "" {
		if len(ua) > maxUALen {
			ua = ua[:maxUALen]
		}
		if ua != ep.lastUA {
			ep.lastUA = string([]byte(ua)) // a copy: the request's header is not kept
		}
		ep.uas.ObserveN(ep.lastUA, w, now)
	}
}

// weight returns how much one event of this second weighs in the
// samples: 1 for the first detailExact, then detailEvery for one in
// detailEvery and 0 for the others.
func (ep *episode) weight(sec int64) uint64 {
	if sec != ep.sampSec {
		ep.sampSec, ep.sampN = sec, 0
	}
	ep.sampN++
	switch {
	case ep.sampN <= detailExact:
		return 1
	case rand.Uint32N(detailEvery) == 0:
		return detailEvery
	}
	return 0
}

// tick adds n events at second sec to the timeline.
func (ep *episode) tick(sec int64, n uint64) {
	if sec > ep.curSec {
		ep.flushSecond()
		ep.curSec = sec
	}
	ep.curN += n // a clock stepped back counts in the current second
}

// flushSecond moves the current second's count into its bucket.
func (ep *episode) flushSecond() {
	if ep.curN == 0 {
		return
	}
	ep.peak = max(ep.peak, ep.curN)
	ep.addBucket(ep.curSec, ep.curN)
	ep.curN = 0
}

func (ep *episode) addBucket(sec int64, n uint64) {
	i := max(sec-ep.tlStart, 0) / ep.bucketSec
	for i >= maxBuckets {
		// Merge neighbours: the timeline covers twice the time.
		for j := 0; j < maxBuckets/2; j++ {
			ep.buckets[j] = ep.buckets[2*j] + ep.buckets[2*j+1]
		}
		clear(ep.buckets[maxBuckets/2:])
		ep.nb = (ep.nb + 1) / 2
		ep.bucketSec *= 2
		ep.tickFrom /= 2
		i = max(sec-ep.tlStart, 0) / ep.bucketSec
	}
	ep.buckets[i] += n
	ep.nb = max(ep.nb, int(i)+1)
}

// actions is a bitmap of the kinds of action taken: for escalations.
func (ep *episode) actions() uint8 {
	var m uint8
	for a := ActLimited; a < numActions; a++ {
		if ep.act[a] > 0 {
			m |= 1 << a
		}
	}
	if ep.kdrop > 0 {
		m |= 1 << numActions
	}
	return m
}

// snapshot builds the Episode as it stands. The caller holds ep.mu. It
// allocates; it is for the writer and the API.
func (e *Episodes) snapshotLocked(ep *episode, state string) *Episode {
	if !ep.attributed && e.attrib != nil {
		ep.info, ep.attribFound = e.attrib.Lookup(ep.src.Addr())
		ep.attributed = true
	}
	out := &Episode{
		ID:         ep.idLocked(),
		State:      state,
		Source:     sourceText(ep.src, ep.prefix),
		Prefix:     prefixOf(ep.src.Addr()).String(),
		Kind:       ep.kind,
		FirstSeen:  ep.first.UTC(),
		LastSeen:   ep.last.UTC(),
		Total:      ep.total,
		PeakPerSec: float64(max(ep.peak, ep.curN)),
		Opened:     ep.opened.Round(0).UTC(),
		Reason:     ep.why.String(),
	}
	cs := []*Count{&out.Requests.Connect, &out.Requests.Announce, &out.Requests.Scrape, &out.Requests.Garbage,
		&out.Requests.ForgedCookie, &out.Requests.SYN, &out.Requests.KernelDropped, &out.Requests.HTTP}
	var ver, spoof uint64
	for k, c := range cs {
		c.Spoofable, c.Verified = ep.req[k][0], ep.req[k][1]
		ver += c.Verified
		spoof += c.Spoofable
	}
	out.Verified = ver > spoof
	secs := ep.last.Sub(ep.first).Seconds() + 1
	out.MeanPerSec = math.Round(float64(ep.total)/secs*1000) / 1000
	out.Actions = Actions{Refused: ep.act[ActRefused], Limited: ep.act[ActLimited], Banned: ep.act[ActBanned],
		KernelDropped: ep.kdrop, Blocked: ep.act[ActBlocked]}

	out.Timeline = Timeline{Start: time.Unix(ep.tlStart, 0).UTC(), BucketSeconds: ep.bucketSec, Counts: ep.timelineLocked()}

	out.Hashes = []HashCount{}
	for _, h := range ep.hashes.Top(-1) {
		reg := e.registered != nil && e.registered(h.Key)
		out.Hashes = append(out.Hashes, HashCount{InfoHash: h.Key, Count: h.Count, Registered: reg})
	}
	out.HashesSeen, out.HashesRegistered = ep.seen.estimate(), ep.regd.estimate()
	out.Clients = []ClientCount{}
	for _, c := range ep.clients.Top(-1) {
		out.Clients = append(out.Clients, ClientCount{PeerID: peerIDText(c.Key), Client: ClientName(c.Key), Count: c.Count})
	}
	out.UserAgents = []ValueCount{}
	for _, u := range ep.uas.Top(-1) {
		out.UserAgents = append(out.UserAgents, ValueCount{Value: u.Key, Count: u.Count})
	}
	out.Ports = []PortCount{}
	for _, p := range ep.ports.Top(-1) {
		out.Ports = append(out.Ports, PortCount{Port: p.Key, Count: p.Count})
	}
	if ep.attribFound {
		i := ep.info
		out.ASN, out.Org, out.Country, out.AbuseEmail = i.ASN, i.Org, i.Country, i.AbuseEmail
		out.Network = i.Prefix.String()
		out.AttributionSource = attributionSource(i.Source)
	}
	return out
}

// timelineLocked returns the timeline's counts, the current second's
// included.
func (ep *episode) timelineLocked() []uint64 {
	counts := slices.Clone(ep.buckets[:ep.nb])
	if ep.curN > 0 {
		i := int(ep.curBucket())
		if i < maxBuckets {
			if i >= len(counts) {
				counts = append(counts, make([]uint64, i+1-len(counts))...)
			}
			counts[i] += ep.curN
		}
	}
	if counts == nil {
		counts = []uint64{}
	}
	return counts
}

// curBucket is the index of the current second's bucket.
func (ep *episode) curBucket() int64 { return max(ep.curSec-ep.tlStart, 0) / ep.bucketSec }

// tickLocked returns the tick record of the episode: its timeline
// from the bucket where the last record or tick left off.
func (ep *episode) tickLocked() *EpisodeTick {
	counts := ep.timelineLocked()
	from := min(ep.tickFrom, int64(len(counts)))
	return &EpisodeTick{
		ID:            ep.idLocked(),
		Start:         time.Unix(ep.tlStart+from*ep.bucketSec, 0).UTC(),
		BucketSeconds: ep.bucketSec,
		Counts:        counts[from:],
		Total:         ep.total,
		LastSeen:      ep.last.UTC(),
	}
}

// idLocked returns the episode's ID, "E-<first_seen unix seconds>-<source>".
func (ep *episode) idLocked() string {
	if ep.id == "" {
		ep.id = "E-" + strconv.FormatInt(ep.first.Unix(), 10) + "-" + sourceText(ep.src, ep.prefix)
	}
	return ep.id
}

// sourceText writes an episode's source: an IPv4 address bare, anything
// else as a prefix.
func sourceText(p netip.Prefix, prefix bool) string {
	if !prefix && p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// attributionSource names an asn source as episodes do.
func attributionSource(s string) string {
	switch s {
	case asn.SourceNetworks:
		return "networks file"
	case asn.SourceMMDB:
		return "mmdb"
	case asn.SourceLocation:
		return "libloc"
	}
	return s
}

// Run writes the records of open episodes (when they open, at most every
// RecordInterval while they change, and when they close after
// QuietPeriod without a request), raises alerts, and closes the open
// episodes when ctx is done, writing their last records. It returns nil.
func (e *Episodes) Run(ctx context.Context) error {
	t := time.NewTicker(writeEvery)
	defer t.Stop()
	wctx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			e.closeAll(wctx)
			return nil
		case <-t.C:
		case <-e.notify:
		}
		e.sweep(wctx, e.now())
	}
}

// sweep writes what is due for every open episode at now.
func (e *Episodes) sweep(ctx context.Context, now time.Time) {
	for i := range e.eps {
		ep := &e.eps[i]
		ep.mu.Lock()
		if !ep.open {
			ep.mu.Unlock()
			continue
		}
		ep.tick(now.Unix(), 0) // close the seconds gone by
		var snap *Episode
		var event string
		quiet := now.Sub(ep.last) >= e.cfg.QuietPeriod
		switch {
		case quiet:
			event = EventClosed
		case !ep.written:
			event = EventOpened
		case now.Sub(ep.lastRecord) >= RecordInterval && ep.dirty:
			event = EventUpdated
			if now.Sub(ep.lastAlert) >= AlertInterval && ep.escalatedLocked() {
				event = EventEscalated
			}
		}
		if event == "" {
			var tick *EpisodeTick
			if ep.tickDirty && now.Sub(ep.lastTick) >= TickInterval-TickInterval/4 { // the sweeps' ticker jitters
				tick = ep.tickLocked()
				ep.tickDirty, ep.lastTick, ep.tickFrom = false, now, ep.curBucket()
			}
			ep.mu.Unlock()
			if tick != nil {
				e.writeTick(ctx, tick, now)
			}
			continue
		}
		state := EpisodeOpen
		if quiet {
			state = EpisodeClosed
			ep.open = false
		}
		snap = e.snapshotLocked(ep, state)
		snap.Event = event
		ep.written, ep.dirty, ep.lastRecord = true, false, now
		ep.tickDirty, ep.lastTick, ep.tickFrom = false, now, ep.curBucket()
		if event == EventOpened || event == EventEscalated {
			ep.lastAlert, ep.alertPeak, ep.alertActs = now, uint64(snap.PeakPerSec), ep.actions()
		}
		key := ep.key
		ref := uint32(i) + 1 | uint32(ep.gen)<<16
		ep.mu.Unlock()

		e.write(ctx, snap, now)
		if e.alerts != nil && (event == EventOpened || event == EventEscalated) {
			e.alerts.Alert(event, snap)
		}
		if quiet {
			e.release(uint32(i), key, ref, snap)
		}
	}
}

// escalatedLocked reports whether the episode grew enough since its last
// alert to raise another: its peak doubled, or warden took a kind of
// action it had not.
func (ep *episode) escalatedLocked() bool {
	return max(ep.peak, ep.curN) >= 2*max(ep.alertPeak, 1) || ep.actions()&^ep.alertActs != 0
}

// write appends an episode's record.
func (e *Episodes) write(ctx context.Context, snap *Episode, now time.Time) {
	if e.out == nil {
		return
	}
	rec, err := NewRecord(KindEpisode, now, snap)
	if err == nil {
		err = e.out.Append(ctx, rec)
	}
	if err != nil {
		e.recordErrors.Add(1)
		e.errLog.Log("episode record not written", slog.String("episode", snap.ID), slog.Any("err", err))
		return
	}
	e.records.Add(1)
}

// writeTick appends an episode's tick.
func (e *Episodes) writeTick(ctx context.Context, tick *EpisodeTick, now time.Time) {
	if e.out == nil {
		return
	}
	rec, err := NewRecord(KindEpisodeTick, now, tick)
	if err == nil {
		err = e.out.Append(ctx, rec)
	}
	if err != nil {
		e.recordErrors.Add(1)
		e.errLog.Log("episode tick not written", slog.String("episode", tick.ID), slog.Any("err", err))
		return
	}
	e.ticks.Add(1)
}

// release frees the slot of a closed episode: its key's table entry
// forgets it, and the slot goes back to the free list.
func (e *Episodes) release(slot uint32, key keyRef, ref uint32, snap *Episode) {
	s := &e.tab.sets[key.idx]
	s.lock()
	for i := range ways {
		if s.tag[i] == key.tag && s.e[i].ep == ref {
			s.e[i].ep = 0
		}
	}
	s.unlock()
	e.mu.Lock()
	e.free = append(e.free, slot)
	if len(e.recent) == maxRecent {
		copy(e.recent, e.recent[1:])
		e.recent = e.recent[:maxRecent-1]
	}
	e.recent = append(e.recent, snap)
	e.mu.Unlock()
	e.closed.Add(1)
	e.log.Info("episode closed", "episode", snap.ID, "kind", snap.Kind, "total", snap.Total, "peak_per_sec", snap.PeakPerSec)
}

// closeAll closes every open episode, writing its last record: warden is
// stopping.
func (e *Episodes) closeAll(ctx context.Context) {
	e.closeOnce.Do(func() {
		now := e.now()
		for i := range e.eps {
			ep := &e.eps[i]
			ep.mu.Lock()
			if !ep.open {
				ep.mu.Unlock()
				continue
			}
			ep.tick(now.Unix(), 0)
			ep.open = false
			snap := e.snapshotLocked(ep, EpisodeClosed)
			snap.Event = EventClosed
			key, ref := ep.key, uint32(i)+1|uint32(ep.gen)<<16
			ep.mu.Unlock()
			e.write(ctx, snap, now)
			e.release(uint32(i), key, ref, snap)
		}
	})
}

// EpisodeStats are the aggregator's counters since start.
type EpisodeStats struct {
	Open   int    `json:"open"`
	Opened uint64 `json:"opened"`
	Closed uint64 `json:"closed"`
	// Full counts thresholds crossed while max_open episodes were open:
	// no episode was opened for them.
	Full uint64 `json:"full"`
	// Untracked counts events whose key found its set of the table full
	// of keys with open episodes: counted in no window.
	Untracked    uint64 `json:"untracked"`
	Records      uint64 `json:"records"`
	Ticks        uint64 `json:"ticks"`
	RecordErrors uint64 `json:"record_errors"`
	// TableBytes is the table's fixed memory.
	TableBytes int `json:"table_bytes"`
}

// Stats returns the counters.
func (e *Episodes) Stats() EpisodeStats {
	e.mu.Lock()
	open := e.cfg.MaxOpen - len(e.free)
	e.mu.Unlock()
	return EpisodeStats{
		Open: open, Opened: e.opened.Load(), Closed: e.closed.Load(), Full: e.full.Load(),
		Untracked: e.untracked.Load(), Records: e.records.Load(), Ticks: e.ticks.Load(), RecordErrors: e.recordErrors.Load(),
		TableBytes: len(e.tab.sets) * setBytes,
	}
}

// Open returns the open episodes as they stand, newest first.
func (e *Episodes) Open() []*Episode {
	var out []*Episode
	for i := range e.eps {
		ep := &e.eps[i]
		ep.mu.Lock()
		if ep.open {
			out = append(out, e.snapshotLocked(ep, EpisodeOpen))
		}
		ep.mu.Unlock()
	}
	sortNewest(out)
	return out
}

// List returns up to n episodes, open ones as they stand and the most
// recently closed ones (at most 256 are kept), newest first by
// first_seen.
func (e *Episodes) List(n int) []*Episode {
	out := e.Open()
	e.mu.Lock()
	out = append(out, e.recent...)
	e.mu.Unlock()
	sortNewest(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Get returns the episode with id, open or recently closed.
func (e *Episodes) Get(id string) (*Episode, bool) {
	for i := range e.eps {
		ep := &e.eps[i]
		ep.mu.Lock()
		if ep.open && ep.idLocked() == id {
			snap := e.snapshotLocked(ep, EpisodeOpen)
			ep.mu.Unlock()
			return snap, true
		}
		ep.mu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.recent) - 1; i >= 0; i-- {
		if e.recent[i].ID == id {
			return e.recent[i], true
		}
	}
	return nil, false
}

func sortNewest(eps []*Episode) {
	slices.SortStableFunc(eps, func(a, b *Episode) int {
		if c := b.FirstSeen.Compare(a.FirstSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
