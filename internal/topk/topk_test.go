package topk

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func TestExactWhileUnderCapacity(t *testing.T) {
	s := New[string](10)
	now := time.Unix(100, 0)
	for i, k := range []string{"a", "b", "a", "c", "a", "b"} {
		s.Observe(k, now.Add(time.Duration(i)*time.Second))
	}
	top := s.Top(-1)
	want := []struct {
		key   string
		count uint64
	}{{"a", 3}, {"b", 2}, {"c", 1}}
	if len(top) != len(want) {
		t.Fatalf("Top = %+v, want %v", top, want)
	}
	for i, w := range want {
		if top[i].Key != w.key || top[i].Count != w.count || top[i].Error != 0 {
			t.Fatalf("Top[%d] = %+v, want %s x%d exact", i, top[i], w.key, w.count)
		}
	}
	if top[0].FirstSeen != now || top[0].LastSeen != now.Add(4*time.Second) {
		t.Fatalf("a seen %v..%v, want %v..%v", top[0].FirstSeen, top[0].LastSeen, now, now.Add(4*time.Second))
	}
	if got := s.Top(1); len(got) != 1 || got[0].Key != "a" {
		t.Fatalf("Top(1) = %+v", got)
	}
}

// TestHeavyHittersSurviveNoise checks the guarantee the operator relies on:
// a few hashes announced often stay on top while a million one-off keys
// pass through a sketch of 64 counters.
func TestHeavyHittersSurviveNoise(t *testing.T) {
	s := New[uint64](64)
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(0, 0)
	heavy := map[uint64]uint64{1: 30_000, 2: 20_000, 3: 15_000}
	var stream []uint64
	for k, n := range heavy {
		for range n {
			stream = append(stream, k)
		}
	}
	for range 1_000_000 {
		stream = append(stream, 1000+r.Uint64())
	}
	r.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	for _, k := range stream {
		s.Observe(k, now)
	}
	top := s.Top(3)
	for i, want := range []uint64{1, 2, 3} {
		e := top[i]
		if e.Key != want {
			t.Fatalf("Top(3) = %+v, want keys 1, 2, 3", top)
		}
		if e.Count < heavy[want] || e.Count-e.Error > heavy[want] {
			t.Fatalf("key %d: count %d (error %d) does not bracket the true %d", want, e.Count, e.Error, heavy[want])
		}
	}
	if s.Total() != uint64(len(stream)) {
		t.Fatalf("Total = %d, want %d", s.Total(), len(stream))
	}
}

func TestBoundedMemory(t *testing.T) {
	s := New[[20]byte](100)
	var k [20]byte
	now := time.Now()
	for i := range 1000 { // warm up past capacity
		k[0], k[1] = byte(i), byte(i>>8)
		s.Observe(k, now)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	i := 0
	allocs := testing.AllocsPerRun(100_000, func() {
		i++
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		s.Observe(k, now)
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	if allocs != 0 {
		t.Fatalf("Observe of new keys at capacity allocates %v times", allocs)
	}
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 1<<20 {
		t.Fatalf("heap grew %d bytes over 100k distinct keys", grown)
	}
}

func BenchmarkObserve(b *testing.B) {
	s := New[[20]byte](128)
	var k [20]byte
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		s.Observe(k, now)
	}
}

// TestRankedByGuaranteedCount checks that a key that has just displaced
// another, inheriting its count as error, ranks below a key seen often:
// with two counters, the one-off "new" inherits "steady"'s neighbour's
// count and so has a higher Count than its own single sighting.
func TestRankedByGuaranteedCount(t *testing.T) {
	s := New[string](2)
	now := time.Unix(100, 0)
	s.ObserveN("steady", 5, now)
	s.ObserveN("old", 5, now)
	s.Observe("new", now) // displaces one of the two, Count 6, Error 5
	top := s.Top(-1)
	if len(top) != 2 {
		t.Fatalf("Top = %+v", top)
	}
	if top[1].Key != "new" || top[1].Count != 6 || top[1].Error != 5 {
		t.Fatalf("Top = %+v, want the newcomer (count 6, error 5) ranked last", top)
	}
}

func TestObserveNWeighs(t *testing.T) {
	s := New[string](4)
	now := time.Unix(100, 0)
	s.ObserveN("a", 64, now)
	s.Observe("b", now)
	if top := s.Top(-1); top[0].Key != "a" || top[0].Count != 64 || s.Total() != 65 {
		t.Fatalf("Top = %+v, total %d; want a x64 of 65", top, s.Total())
	}
}

func TestDecayHalves(t *testing.T) {
	s := New[string](2)
	now := time.Unix(100, 0)
	s.ObserveN("a", 100, now)
	s.ObserveN("b", 10, now)
	s.Observe("c", now) // displaces b: count 11, error 10
	s.Decay()
	top := s.Top(-1)
	want := map[string][2]uint64{"a": {50, 0}, "c": {6, 5}}
	for _, e := range top {
		if w := want[e.Key]; e.Count != w[0] || e.Error != w[1] {
			t.Errorf("after Decay %s = count %d error %d, want %d %d", e.Key, e.Count, e.Error, w[0], w[1])
		}
	}
	for range 10 {
		s.Decay()
	}
	// a (100 requests long ago) has decayed to 1; 3 new ones outrank it.
	s.ObserveN("d", 3, now)
	if top := s.Top(1); top[0].Key != "d" {
		t.Fatalf("Top(1) after decay = %+v, want the recent d first", top)
	}
}
