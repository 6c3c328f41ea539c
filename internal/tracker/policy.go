package tracker

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/topk"
)

// Mode decides which torrents are tracked.
type Mode uint8

const (
	// ModeAllowlist tracks only registered, active torrents.
	ModeAllowlist Mode = iota
	// ModeDenylist tracks every torrent but revoked ones.
	ModeDenylist
	// ModeOpen tracks any info hash.
	ModeOpen
)

// Modes names the modes in the order the documentation lists them.
var Modes = []string{"allowlist", "denylist", "open"}

func (m Mode) String() string {
	if int(m) < len(Modes) {
		return Modes[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MarshalText writes the mode's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode's name.
func (m *Mode) UnmarshalText(b []byte) error {
	for i, name := range Modes {
		if string(b) == name {
			*m = Mode(i)
			return nil
		}
	}
	return fmt.Errorf("mode: %q is not one of allowlist, denylist, open", b)
}

// Registry is what the tracker needs from the torrent registry.
type Registry interface {
	// Status reports whether ih is registered and, if so, whether it is
	// revoked and why. It must not block or allocate: it is on the path of
	// every announce.
	Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string)
	// Generation changes whenever a Status answer may have changed. The
	// swarm store remembers the generation under which it last admitted
	// each torrent, so announces for a torrent in steady use skip Status.
	Generation() uint64
}

// Rejected summarizes refused requests, for the operator.
type Rejected struct {
	Unregistered uint64 `json:"unregistered"`
	Revoked      uint64 `json:"revoked"`
	// TopHashes and TopSources are the refused info hashes and source
	// addresses seen most. Counts are estimates: above a few thousand
	// refusals a second only a sample is counted (see SampleRate).
	TopHashes  []topk.Entry[bittorrent.InfoHash] `json:"top_hashes"`
	TopSources []topk.Entry[netip.Addr]          `json:"top_sources"`
	// SampleRate is the fraction of refusals counted in the top lists
	// in the last second.
	SampleRate float64 `json:"sample_rate"`
}

// refusals keeps the counters and heavy-hitter sketches of refused
// requests. Observing costs a few atomic operations; above exactPerSec
// refusals in a second, only one in sampleEvery reaches the sketches, so a
// flood cannot make the reject path slow.
type refusals struct {
	unregistered, revoked atomic.Uint64
	hashes                *topk.Sketch[bittorrent.InfoHash]
	sources               *topk.Sketch[netip.Addr]
	second                atomic.Int64 // unix second of the current window
	inSecond              atomic.Uint64
	sampled               atomic.Bool // whether the last window sampled

	notRegistered *bittorrent.Refusal // the preallocated "not registered" answer

	mu          sync.Mutex                                     // serializes writers of revoked
	revokedMsgs atomic.Pointer[map[string]*bittorrent.Refusal] // reason -> answer, copy on write
	contact     string
	interval    time.Duration
}

const (
	exactPerSec    = 2000
	sampleEvery    = 64
	topKeys        = 256
	maxRevokedMsgs = 1024
)

func newRefusals(contact string, interval time.Duration) *refusals {
	r := &refusals{
		hashes:   topk.New[bittorrent.InfoHash](topKeys),
		sources:  topk.New[netip.Addr](topKeys),
		contact:  contact,
		interval: interval,
	}
	r.notRegistered = &bittorrent.Refusal{Reason: r.withContact("torrent not registered on this tracker"), Interval: interval}
	empty := map[string]*bittorrent.Refusal{}
	r.revokedMsgs.Store(&empty)
	return r
}

func (r *refusals) withContact(msg string) string {
	if r.contact == "" {
		return msg
	}
	return msg + "; contact " + r.contact
}

// revokedAnswer returns the refusal for a torrent revoked with reason,
// allocating only the first time a reason is seen.
func (r *refusals) revokedAnswer(reason string) *bittorrent.Refusal {
	if a, ok := (*r.revokedMsgs.Load())[reason]; ok {
		return a
	}
	msg := "revoked"
	if reason != "" {
		msg += ": " + reason
	}
	a := &bittorrent.Refusal{Reason: r.withContact(msg), Interval: r.interval}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.revokedMsgs.Load()
	if len(old) >= maxRevokedMsgs {
		return a
	}
	m := make(map[string]*bittorrent.Refusal, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[reason] = a
	r.revokedMsgs.Store(&m)
	return a
}

func (r *refusals) observe(ih bittorrent.InfoHash, src netip.Addr, now time.Time) {
	sec := now.Unix()
	if old := r.second.Load(); old != sec && r.second.CompareAndSwap(old, sec) {
		r.sampled.Store(r.inSecond.Swap(0) > exactPerSec)
	}
	if r.inSecond.Add(1) > exactPerSec && rand.Uint32N(sampleEvery) != 0 {
		return
	}
	r.hashes.Observe(ih, now)
	r.sources.Observe(src, now)
}

func (r *refusals) report(n int) Rejected {
	rate := 1.0
	if r.sampled.Load() || r.inSecond.Load() > exactPerSec {
		rate = 1.0 / sampleEvery
	}
	return Rejected{
		Unregistered: r.unregistered.Load(),
		Revoked:      r.revoked.Load(),
		TopHashes:    r.hashes.Top(n),
		TopSources:   r.sources.Top(n),
		SampleRate:   rate,
	}
}
