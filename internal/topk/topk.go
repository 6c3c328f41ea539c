// Package topk finds the most frequent keys of an unbounded stream in a
// fixed amount of memory, with the Space-Saving algorithm (Metwally,
// Agrawal, El Abbadi 2005): it keeps k counters; a key not being counted
// takes over the smallest counter and inherits its count as an error bound.
// Any key seen more than n/k times in a stream of n is guaranteed to be
// kept. Memory does not grow with the number of distinct keys.
package topk

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Sketch counts keys. It is safe for concurrent use and, once it has seen
// k distinct keys, Observe does not allocate.
type Sketch[K comparable] struct {
	mu    sync.Mutex // guards the fields below
	index map[K]int  // key -> position in heap
	heap  []counter[K]
	total uint64
}

type counter[K comparable] struct {
	key       K
	count     uint64
	err       uint64 // the count inherited when this key took the slot
	firstSeen time.Time
	lastSeen  time.Time
}

// Entry is one counted key. Count over-estimates the true count by at most
// Error.
type Entry[K comparable] struct {
	Key       K         `json:"key"`
	Count     uint64    `json:"count"`
	Error     uint64    `json:"error"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// New returns a sketch that keeps k counters; k must be positive.
func New[K comparable](k int) *Sketch[K] {
	if k <= 0 {
		panic("topk: k must be positive")
	}
	return &Sketch[K]{index: make(map[K]int, k), heap: make([]counter[K], 0, k)}
}

// Observe counts one occurrence of key at time now.
func (s *Sketch[K]) Observe(key K, now time.Time) { s.ObserveN(key, 1, now) }

// ObserveN counts n occurrences of key at time now: a caller that feeds
// the sketch a 1-in-n sample weighs each observation by n.
func (s *Sketch[K]) ObserveN(key K, n uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total += n
	if i, ok := s.index[key]; ok {
		s.heap[i].count += n
		s.heap[i].lastSeen = now
		s.down(i)
		return
	}
	if len(s.heap) < cap(s.heap) {
		s.heap = append(s.heap, counter[K]{key: key, count: n, firstSeen: now, lastSeen: now})
		i := len(s.heap) - 1
		s.index[key] = i
		s.up(i)
		return
	}
	// Replace the minimum, at the root of the heap.
	min := &s.heap[0]
	delete(s.index, min.key)
	*min = counter[K]{key: key, count: min.count + n, err: min.count, firstSeen: now, lastSeen: now}
	s.index[key] = 0
	s.down(0)
}

// Total returns how many observations the sketch has seen.
func (s *Sketch[K]) Total() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Top returns up to n entries (all for n < 0), ranked by their
// guaranteed count (Count - Error), highest first, then by Count. Ranking
// by Count alone would put a key that has just displaced another, and
// inherited its count, above keys seen many times.
func (s *Sketch[K]) Top(n int) []Entry[K] {
	s.mu.Lock()
	out := make([]Entry[K], len(s.heap))
	for i, c := range s.heap {
		out[i] = Entry[K]{Key: c.key, Count: c.count, Error: c.err, FirstSeen: c.firstSeen, LastSeen: c.lastSeen}
	}
	s.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Entry[K]) int {
		if c := cmp.Compare(b.Count-b.Error, a.Count-a.Error); c != 0 {
			return c
		}
		return cmp.Compare(b.Count, a.Count)
	})
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Decay halves every count and error bound, so that old traffic weighs
// less than new. The guarantees hold for the decayed stream: halving
// keeps each count's order and each error's bound.
func (s *Sketch[K]) Decay() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.heap {
		c := &s.heap[i]
		c.count -= c.count / 2
		c.err -= c.err / 2
		if c.err > c.count {
			c.err = c.count
		}
	}
	s.total -= s.total / 2
	// Halving is monotonic, so the heap order stands.
}

// Reset forgets every key.
func (s *Sketch[K]) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.index)
	s.heap = s.heap[:0]
	s.total = 0
}

// The heap is a min-heap on count, so the key to evict is at the root.

func (s *Sketch[K]) swapLocked(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.index[s.heap[i].key] = i
	s.index[s.heap[j].key] = j
}

func (s *Sketch[K]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if s.heap[p].count <= s.heap[i].count {
			return
		}
		s.swapLocked(i, p)
		i = p
	}
}

func (s *Sketch[K]) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.heap[r].count < s.heap[l].count {
			m = r
		}
		if s.heap[i].count <= s.heap[m].count {
			return
		}
		s.swapLocked(i, m)
		i = m
	}
}
