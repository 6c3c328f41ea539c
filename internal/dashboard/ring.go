package dashboard

import (
	"encoding/json"
	"sync"

	"warden/internal/reqstat"
)

// RingSeconds is how far back the rate chart goes: an hour of
// one-second samples, held in fixed memory (about 130 KiB).
const RingSeconds = 3600

// counts is one second's requests by outcome, over every frontend.
type counts = [reqstat.NumOutcomes]uint32

// ring holds the last RingSeconds samples of requests per second by
// outcome. The sampler adds; viewers read a copy when they connect.
type ring struct {
	mu   sync.Mutex // guards the fields below
	at   [RingSeconds]int64
	c    [RingSeconds]counts
	next int // where the next sample goes
	n    int // samples held
	prev [reqstat.NumOutcomes]uint64
	seen bool // prev holds a reading
}

func newRing() *ring { return new(ring) }

// add records the requests since the last reading, given the running
// totals now, as the sample of second sec, and returns it. The first
// reading only sets the base; a total that went down (a restarted
// counter) counts as none.
func (r *ring) add(sec int64, tot [reqstat.NumOutcomes]uint64) counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c counts
	if r.seen {
		for o := range c {
			if tot[o] > r.prev[o] {
				c[o] = uint32(min(tot[o]-r.prev[o], 1<<32-1))
			}
		}
	}
	r.prev, r.seen = tot, true
	r.at[r.next] = sec
	r.c[r.next] = c
	r.next = (r.next + 1) % RingSeconds
	r.n = min(r.n+1, RingSeconds)
	return c
}

// history is the ring as sent to a viewer that connects: sample times
// (unix seconds) and counts by outcome, oldest first.
type history struct {
	Outcomes []string `json:"outcomes"`
	T        []int64  `json:"t"`
	C        []counts `json:"c"`
}

// history returns the ring's samples as JSON.
func (r *ring) history() []byte {
	h := history{Outcomes: outcomeNames()}
	r.mu.Lock()
	h.T = make([]int64, 0, r.n)
	h.C = make([]counts, 0, r.n)
	for i := range r.n {
		j := (r.next - r.n + i + RingSeconds) % RingSeconds
		h.T = append(h.T, r.at[j])
		h.C = append(h.C, r.c[j])
	}
	r.mu.Unlock()
	b, _ := json.Marshal(h) // plain slices of numbers and strings
	return b
}

func outcomeNames() []string {
	names := make([]string, reqstat.NumOutcomes)
	for o := range reqstat.NumOutcomes {
		names[o] = o.String()
	}
	return names
}
