// Package evidence keeps the operator's record of who knocks on the
// tracker: which sources are refused, limited or banned, and which info
// hashes they ask for. The packages on the request path (tracker, limit,
// the frontends) never import it: each declares the small sink it reports
// to, which must not block, and cmd/warden connects those sinks to a
// Knocks. Evidence only reads what it is told; it is never on the request
// path's critical section beyond a few atomic operations and, for a
// sample of events, a short lock.
//
// Today it holds the live "who knocks" lists; the tamper-evident log of
// abuse episodes, attribution and alerts will grow here.
package evidence

import (
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/topk"
	"warden/internal/tracker"
)

// Knocks counts refused requests and the sources the guard turns away,
// and keeps the heaviest keys of each in fixed memory. It implements
// tracker.RefusalSink and limit.Sink; every method is safe for
// concurrent use, and the sink methods do not block or allocate once the
// lists are full.
type Knocks struct {
	unregistered, revoked atomic.Uint64
	limited, banned       atomic.Uint64
	blocked               atomic.Uint64

	refusedHashes   sampledSketch[bittorrent.InfoHash]
	refusedSources  sampledSketch[netip.Addr]
	offenderSources sampledSketch[netip.Addr]
}

var (
	_ tracker.RefusalSink = (*Knocks)(nil)
	_ limit.Sink          = (*Knocks)(nil)
)

// Sizes of the lists: enough to hold every source above 1/256 of the
// traffic, in a few tens of KiB.
const topKeys = 256

// NewKnocks returns empty lists.
func NewKnocks() *Knocks {
	return &Knocks{
		refusedHashes:   newSampledSketch[bittorrent.InfoHash](),
		refusedSources:  newSampledSketch[netip.Addr](),
		offenderSources: newSampledSketch[netip.Addr](),
	}
}

// Refused implements tracker.RefusalSink.
func (k *Knocks) Refused(ih bittorrent.InfoHash, src netip.Addr, why tracker.RefusalKind, now time.Time) {
	switch why {
	case tracker.RefusedRevoked:
		k.revoked.Add(1)
	default:
		k.unregistered.Add(1)
	}
	src = src.Unmap()
	if k.refusedHashes.admit(now) {
		k.refusedHashes.observe(ih, now)
		k.refusedSources.observe(src, now)
	}
}

// Dropped implements limit.Sink.
func (k *Knocks) Dropped(src netip.Addr, v limit.Verdict, now time.Time) {
	switch v {
	case limit.Banned:
		k.banned.Add(1)
	case limit.Blocked:
		k.blocked.Add(1)
		return // the operator's own list: not an offender to rank
	default:
		k.limited.Add(1)
	}
	if k.offenderSources.admit(now) {
		k.offenderSources.observe(src.Unmap(), now)
	}
}

// Decay halves every count in the lists, so that a source that stopped
// knocking an hour ago sinks below one knocking now. Run calls it.
func (k *Knocks) Decay() {
	k.refusedHashes.sketch.Decay()
	k.refusedSources.sketch.Decay()
	k.offenderSources.sketch.Decay()
}

// DecayInterval is how often Run halves the counts: a source's weight
// halves every ten minutes once it stops.
const DecayInterval = 10 * time.Minute

// Run decays the lists every DecayInterval until done is closed.
func (k *Knocks) Run(done <-chan struct{}) {
	t := time.NewTicker(DecayInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			k.Decay()
		}
	}
}

// Entry is one source or info hash in a "who knocks" list. Counts are
// estimates of requests, scaled up from the sample the list was fed (see
// Refusals.SampleRate), and decayed: they halve every DecayInterval.
// Guaranteed is a lower bound of Count: what the key surely sent of it.
// Lists are ranked by Guaranteed, so a key that has only just entered the
// list (and inherited the count of the key it displaced) does not outrank
// a steady offender.
type Entry[K comparable] struct {
	Key        K         `json:"key"`
	Count      uint64    `json:"count"`
	Guaranteed uint64    `json:"guaranteed"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
}

// Refusals summarizes refused announces and scrapes.
type Refusals struct {
	Unregistered uint64 `json:"unregistered"`
	Revoked      uint64 `json:"revoked"`
	// SampleRate is the fraction of refusals that fed the lists in the
	// last second: 1 below a few thousand a second, less above.
	SampleRate float64                      `json:"sample_rate"`
	TopHashes  []Entry[bittorrent.InfoHash] `json:"top_hashes"`
	TopSources []Entry[netip.Addr]          `json:"top_sources"`
}

// Refusals returns the totals and the top n refused hashes and sources.
func (k *Knocks) Refusals(n int) Refusals {
	return Refusals{
		Unregistered: k.unregistered.Load(),
		Revoked:      k.revoked.Load(),
		SampleRate:   k.refusedHashes.rate(),
		TopHashes:    k.refusedHashes.top(n),
		TopSources:   k.refusedSources.top(n),
	}
}

// Offenders summarizes the requests the guard turned away.
type Offenders struct {
	Limited    uint64              `json:"limited"`
	Banned     uint64              `json:"banned"`
	Blocked    uint64              `json:"blocked"`
	SampleRate float64             `json:"sample_rate"`
	Top        []Entry[netip.Addr] `json:"top"`
}

// Offenders returns the totals and the top n sources turned away as over
// their rate or banned (blocklisted sources are counted, not ranked).
func (k *Knocks) Offenders(n int) Offenders {
	return Offenders{
		Limited:    k.limited.Load(),
		Banned:     k.banned.Load(),
		Blocked:    k.blocked.Load(),
		SampleRate: k.offenderSources.rate(),
		Top:        k.offenderSources.top(n),
	}
}

// sampledSketch feeds a topk sketch every event up to exactPerSec events
// in a second and one in sampleEvery above that, so that a flood costs the
// sketch's lock almost nothing, and scales the counts back up when read.
type sampledSketch[K comparable] struct {
	sketch   *topk.Sketch[K]
	second   atomic.Int64  // unix second of the current window
	inSecond atomic.Uint64 // events in it
	sampled  atomic.Bool   // whether the previous window sampled
}

const (
	exactPerSec = 2000
	sampleEvery = 64
)

func newSampledSketch[K comparable]() sampledSketch[K] {
	return sampledSketch[K]{sketch: topk.New[K](topKeys)}
}

// admit counts one event and reports whether it goes into the sketch.
func (s *sampledSketch[K]) admit(now time.Time) bool {
	sec := now.Unix()
	if old := s.second.Load(); old != sec && s.second.CompareAndSwap(old, sec) {
		s.sampled.Store(s.inSecond.Swap(0) > exactPerSec)
	}
	return s.inSecond.Add(1) <= exactPerSec || rand.Uint32N(sampleEvery) == 0
}

// observe adds key to the sketch with the weight of the current sampling.
func (s *sampledSketch[K]) observe(key K, now time.Time) {
	w := uint64(1)
	if s.inSecond.Load() > exactPerSec {
		w = sampleEvery
	}
	s.sketch.ObserveN(key, w, now)
}

func (s *sampledSketch[K]) rate() float64 {
	if s.sampled.Load() || s.inSecond.Load() > exactPerSec {
		return 1.0 / sampleEvery
	}
	return 1
}

func (s *sampledSketch[K]) top(n int) []Entry[K] {
	es := s.sketch.Top(n)
	out := make([]Entry[K], len(es))
	for i, e := range es {
		out[i] = Entry[K]{Key: e.Key, Count: e.Count, Guaranteed: e.Count - e.Error, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen}
	}
	return out
}
