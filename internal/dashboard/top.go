package dashboard

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"warden/internal/limit"
)

// The sizes of the lists in each second's event.
const (
	topSources = 20
	topBans    = 100
)

// tickEvent is one second as viewers see it.
type tickEvent struct {
	T        int64      `json:"t"` // unix second
	C        []uint32   `json:"c"` // requests by outcome, as in history
	Sources  []source   `json:"sources"`
	Prefixes []source   `json:"prefixes"`
	Bans     []banView  `json:"bans"`
	BanCount int        `json:"ban_count"`
	Guard    guardTotal `json:"guard"`
}

// source is a source or prefix the guard turns away.
type source struct {
	Key     string  `json:"key"`
	PerSec  float64 `json:"per_sec"` // turned away per second, over the last tick
	Count   uint64  `json:"count"`   // estimated, decayed (evidence.Entry)
	State   string  `json:"state"`   // banned, limited (turned away in the last few seconds) or quiet
	Org     string  `json:"org,omitempty"`
	Sources int     `json:"sources,omitempty"` // for a prefix: its sources in the list
}

type banView struct {
	Prefix  string    `json:"prefix"`
	Until   time.Time `json:"until"`
	Strikes int       `json:"strikes"`
	Dropped uint64    `json:"dropped"`
}

type guardTotal struct {
	Limited uint64 `json:"limited"`
	Banned  uint64 `json:"banned"`
}

// recentWindow is how long after its last refusal a source still shows
// as limited.
const recentWindow = 3 * time.Second

// topTracker remembers the last tick's counts, to turn the offender
// lists' running counts into rates. Only the sampler uses it.
type topTracker struct {
	prev   map[netip.Addr]uint64
	prevAt time.Time
}

// fill adds the sources, prefixes and bans at now to ev.
func (t *topTracker) fill(ev *tickEvent, deps Deps, now time.Time) {
	ev.Sources, ev.Prefixes, ev.Bans = []source{}, []source{}, []banView{}
	banned := map[netip.Prefix]bool{}
	if deps.Guard != nil {
		lim := deps.Guard.Limiter()
		bans := lim.Bans(now)
		ev.BanCount = len(bans)
		slices.SortFunc(bans, func(a, b limit.Ban) int { return b.Until.Compare(a.Until) })
		for _, b := range bans {
			banned[b.Prefix] = true
		}
		for _, b := range bans[:min(len(bans), topBans)] {
			ev.Bans = append(ev.Bans, banView{Prefix: b.Prefix.String(), Until: b.Until, Strikes: b.Strikes, Dropped: b.Dropped})
		}
	}
	if deps.Knocks == nil {
		return
	}
	off := deps.Knocks.Offenders(topSources)
	ev.Guard = guardTotal{Limited: off.Limited, Banned: off.Banned}
	dt := now.Sub(t.prevAt).Seconds()
	next := make(map[netip.Addr]uint64, len(off.Top))
	byPrefix := map[netip.Prefix]*source{}
	for _, e := range off.Top {
		next[e.Key] = e.Count
		s := source{Key: e.Key.String(), Count: e.Count, State: "quiet"}
		if p, ok := t.prev[e.Key]; ok && dt > 0 {
			if e.Count > p {
				s.PerSec = float64(e.Count-p) / dt
			}
		} else if span := now.Sub(e.FirstSeen).Seconds(); span > 0 {
			s.PerSec = float64(e.Count) / max(span, 1)
		}
		if now.Sub(e.LastSeen) < recentWindow {
			s.State = "limited"
		}
		var prefix netip.Prefix
		if deps.Guard != nil {
			lim := deps.Guard.Limiter()
			addr, pfx := lim.Keys(e.Key)
			prefix = pfx
			if banned[addr] || banned[pfx] {
				s.State = "banned"
			}
		}
		if deps.Org != nil {
			s.Org = deps.Org(e.Key)
		}
		ev.Sources = append(ev.Sources, s)
		if !prefix.IsValid() {
			continue
		}
		ps := byPrefix[prefix]
		if ps == nil {
			ps = &source{Key: prefix.String(), State: "quiet", Org: s.Org}
			if banned[prefix] {
				ps.State = "banned"
			}
			byPrefix[prefix] = ps
		}
		ps.PerSec += s.PerSec
		ps.Count += s.Count
		ps.Sources++
		if ps.State == "quiet" && s.State == "limited" {
			ps.State = "limited" // a source of it is turned away now; the prefix itself is not banned
		}
	}
	t.prev, t.prevAt = next, now
	slices.SortStableFunc(ev.Sources, func(a, b source) int { return cmp.Compare(b.PerSec, a.PerSec) })
	for _, ps := range byPrefix {
		ev.Prefixes = append(ev.Prefixes, *ps)
	}
	slices.SortFunc(ev.Prefixes, func(a, b source) int {
		return cmp.Or(cmp.Compare(b.PerSec, a.PerSec), cmp.Compare(a.Key, b.Key))
	})
}
