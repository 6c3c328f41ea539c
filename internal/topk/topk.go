// Package topk finds the most frequent keys of an unbounded stream in a
// fixed amount of memory, with the Space-Saving algorithm (Metwally,
// Agrawal, El Abbadi 2005): it keeps k counters; a key not being counted
// takes over the smallest counter and inherits its count as an error bound.
// Any key seen more than n/k times in a stream of n is guaranteed to be
// kept. Memory does not grow with the number of distinct keys.
package topk

import (
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
func (s *Sketch[K]) Observe(key K, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if i, ok := s.index[key]; ok {
		s.heap[i].count++
		s.heap[i].lastSeen = now
		s.down(i)
		return
	}
	if len(s.heap) < cap(s.heap) {
		s.heap = append(s.heap, counter[K]{key: key, count: 1, firstSeen: now, lastSeen: now})
		i := len(s.heap) - 1
		s.index[key] = i
		s.up(i)
		return
	}
	// Replace the minimum, at the root of the heap.
	min := &s.heap[0]
	delete(s.index, min.key)
	*min = counter[K]{key: key, count: min.count + 1, err: min.count, firstSeen: now, lastSeen: now}
	s.index[key] = 0
	s.down(0)
}

// Total returns how many observations the sketch has seen.
func (s *Sketch[K]) Total() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Top returns up to n entries, most frequent first.
func (s *Sketch[K]) Top(n int) []Entry[K] {
	s.mu.Lock()
	out := make([]Entry[K], len(s.heap))
	for i, c := range s.heap {
		out[i] = Entry[K]{Key: c.key, Count: c.count, Error: c.err, FirstSeen: c.firstSeen, LastSeen: c.lastSeen}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry[K]) int {
		switch {
		case a.Count > b.Count:
			return -1
		case a.Count < b.Count:
			return 1
		}
		return 0
	})
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
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
