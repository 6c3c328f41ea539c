// Package reqstat counts a frontend's requests by kind, address family and
// outcome, and their latency, in fixed arrays of atomic counters that one
// worker owns. The frontends count here on the request path; package
// status sums the workers when someone reads, and package metrics exports
// the sums. So the request path pays one atomic add per request (two for
// a latency observation), never a label lookup or an allocation, and the
// number of series is fixed by the enums below whatever the traffic.
//
// Standard library only, so that the frontends can import it freely.
package reqstat

import (
	"encoding/json"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// Kind is what a request asked for.
type Kind uint8

const (
	// Connect is a BEP 15 connect (UDP only).
	Connect Kind = iota
	Announce
	Scrape
	// Other is a request that is none of these: a datagram with no valid
	// action, an HTTP request for another path or with another method.
	Other
	NumKinds
)

var kindNames = [NumKinds]string{"connect", "announce", "scrape", "other"}

func (k Kind) String() string { return kindNames[k] }

// Family is a request's source address family.
type Family uint8

const (
	IPv4 Family = iota // IPv4, and IPv4-mapped IPv6
	IPv6
	NumFamilies
)

var familyNames = [NumFamilies]string{"ipv4", "ipv6"}

func (f Family) String() string { return familyNames[f] }

// FamilyOf returns a's family; an IPv4-mapped address counts as IPv4.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// Outcome is what became of a request. Each request has exactly one.
type Outcome uint8

const (
	// OK: answered as asked (an error naming a bad field counts as
	// BadRequest).
	OK Outcome = iota
	// RefusedUnregistered and RefusedRevoked: the torrent is not tracked.
	RefusedUnregistered
	RefusedRevoked
	// Limited: over the source's rate, or the tracker's bounds (tracker or
	// prefix full).
	Limited
	// Banned: the guard banned the source or its prefix.
	Banned
	// Blocked: the source is on the operator's blocklist.
	Blocked
	// Shed: a refusal dropped unanswered while the worker was behind.
	Shed
	// BadRequest: malformed, a forged connection ID, an unknown action or
	// path.
	BadRequest
	// Failed: the tracker failed (the swarm store's error).
	Failed
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	"ok", "refused_unregistered", "refused_revoked", "limited", "banned", "blocked", "shed", "bad_request", "failed",
}

func (o Outcome) String() string { return outcomeNames[o] }

// Histogram buckets: the upper bound of bucket i is FirstBucket<<i, from
// 10 µs (a UDP announce takes a few) to about 5 s; the last bucket has no
// upper bound. Doubling keeps the index one bit length away.
const (
	FirstBucket = 10 * time.Microsecond
	NumBuckets  = 21
)

// UpperBound returns the upper bound of bucket i, or 0 for the last,
// unbounded one.
func UpperBound(i int) time.Duration {
	if i >= NumBuckets-1 {
		return 0
	}
	return FirstBucket << i
}

// bucketOf returns the bucket of d: the first whose upper bound is at
// least d.
func bucketOf(d time.Duration) int {
	if d <= FirstBucket {
		return 0
	}
	// ceil(d / FirstBucket) - 1 has bit length i exactly when
	// FirstBucket<<(i-1) < d <= FirstBucket<<i.
	q := uint64((d - 1) / FirstBucket)
	return min(bits.Len64(q), NumBuckets-1)
}

// Counters are one worker's. Only that worker writes them, so increments
// do not contend; they are atomic only so Table can read them while the
// worker runs. The padding keeps two workers' counters off one cache line.
// The zero value is ready to use.
type Counters struct {
	_   cpu.CacheLinePad
	req [NumKinds][NumFamilies][NumOutcomes]atomic.Uint64
	lat [NumBuckets]atomic.Uint64
	ns  atomic.Uint64 // sum of the observed latencies
	_   cpu.CacheLinePad
}

// Count counts one request. It does not allocate.
func (c *Counters) Count(k Kind, f Family, o Outcome) { c.req[k][f][o].Add(1) }

// Observe records n requests that each took d: a batch of datagrams
// answered together. It does not allocate.
func (c *Counters) Observe(d time.Duration, n int) {
	if d < 0 {
		d = 0 // a clock stepped back
	}
	c.lat[bucketOf(d)].Add(uint64(n))
	c.ns.Add(uint64(d) * uint64(n))
}

// AddTo adds c's counts to t. It does not block the worker.
func (c *Counters) AddTo(t *Table) {
	for k := range c.req {
		for f := range c.req[k] {
			for o := range c.req[k][f] {
				t.Requests[k][f][o] += c.req[k][f][o].Load()
			}
		}
	}
	for i := range c.lat {
		t.Latency.Counts[i] += c.lat[i].Load()
	}
	t.Latency.Sum += time.Duration(c.ns.Load())
}

// Table is a sum of Counters.
type Table struct {
	Requests [NumKinds][NumFamilies][NumOutcomes]uint64
	Latency  Latency
}

// Latency is a latency histogram: Counts[i] requests took at most
// UpperBound(i) and more than UpperBound(i-1).
type Latency struct {
	Counts [NumBuckets]uint64
	Sum    time.Duration
}

// Count returns the requests observed.
func (l *Latency) Count() uint64 {
	var n uint64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// Add adds u's counts to t.
func (t *Table) Add(u *Table) {
	for k := range t.Requests {
		for f := range t.Requests[k] {
			for o := range t.Requests[k][f] {
				t.Requests[k][f][o] += u.Requests[k][f][o]
			}
		}
	}
	for i := range t.Latency.Counts {
		t.Latency.Counts[i] += u.Latency.Counts[i]
	}
	t.Latency.Sum += u.Latency.Sum
}

// ByOutcome returns the requests of every kind and family by outcome.
func (t *Table) ByOutcome() [NumOutcomes]uint64 {
	var out [NumOutcomes]uint64
	for k := range t.Requests {
		for f := range t.Requests[k] {
			for o, n := range t.Requests[k][f] {
				out[o] += n
			}
		}
	}
	return out
}

// MarshalJSON writes the requests as nested objects, kind → family →
// outcome → count, leaving out the zero counts, and the latency as
// cumulative counts by upper bound in microseconds ("+Inf" for all).
func (t Table) MarshalJSON() ([]byte, error) {
	req := map[string]map[string]map[string]uint64{}
	for k := range t.Requests {
		for f := range t.Requests[k] {
			for o, n := range t.Requests[k][f] {
				if n == 0 {
					continue
				}
				kn, fn := kindNames[k], familyNames[f]
				if req[kn] == nil {
					req[kn] = map[string]map[string]uint64{}
				}
				if req[kn][fn] == nil {
					req[kn][fn] = map[string]uint64{}
				}
				req[kn][fn][outcomeNames[o]] = n
			}
		}
	}
	type bucket struct {
		LE    string `json:"le_us"`
		Count uint64 `json:"count"`
	}
	var (
		buckets []bucket
		cum     uint64
	)
	for i, n := range t.Latency.Counts {
		cum += n
		le := "+Inf"
		if ub := UpperBound(i); ub > 0 {
			le = jsonInt(ub.Microseconds())
		}
		buckets = append(buckets, bucket{le, cum})
	}
	return json.Marshal(struct {
		Requests map[string]map[string]map[string]uint64 `json:"requests"`
		Latency  []bucket                                `json:"latency"`
		SumUS    int64                                   `json:"latency_sum_us"`
	}{req, buckets, t.Latency.Sum.Microseconds()})
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
