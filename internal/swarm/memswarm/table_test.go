package memswarm

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/swarm/swarmtest"
)

// TestTable runs a table through growth, removals and shrinking against a
// map: every entry is found, no absent one is, each sits at its distance
// from home, and an emptied table gives its memory back.
func TestTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := newArena()
	seed := maphash.MakeSeed()
	hash := func(ih bittorrent.InfoHash) uint64 { return maphash.Comparable(seed, ih) }
	var tb table
	model := map[bittorrent.InfoHash]*torrent{}
	records := make([]torrent, 5000) // distinct addresses to store; never dereferenced
	check := func(step int) {
		t.Helper()
		if tb.n != len(model) {
			t.Fatalf("step %d: table holds %d, model %d", step, tb.n, len(model))
		}
		held := 0
		for i, sl := range tb.slots {
			if sl.dist == 0 {
				continue
			}
			held++
			home := tb.home(hash(sl.ih))
			if d := (i - home + len(tb.slots)) % len(tb.slots); uint32(d+1) != sl.dist {
				t.Fatalf("step %d: slot %d holds an entry %d past its home, marked %d", step, i, d, sl.dist)
			}
			if model[sl.ih] != sl.t {
				t.Fatalf("step %d: slot %d holds %x, not in the model", step, i, sl.ih[:4])
			}
		}
		for ih, want := range model {
			if got := tb.get(hash(ih), ih); got != want {
				t.Fatalf("step %d: get(%x) = %p, want %p", step, ih[:4], got, want)
			}
		}
		if held != tb.n {
			t.Fatalf("step %d: %d slots used, n = %d", step, held, tb.n)
		}
	}
	for step := range 30_000 {
		ih := swarmtest.Hash(rng.IntN(5000))
		growing := step < 15_000
		switch _, ok := model[ih]; {
		case !ok && (growing || rng.IntN(4) == 0):
			tr := &records[rng.IntN(len(records))]
			tb.put(a, seed, hash(ih), ih, tr)
			model[ih] = tr
		case ok && (!growing || rng.IntN(3) == 0):
			tb.removeAt(tb.find(hash(ih), ih))
			delete(model, ih)
			if len(tb.slots) > minSlots && tb.n*4 < len(tb.slots) {
				tb.resize(a, seed, max(minSlots, tb.n*2))
			}
		default:
			if i := tb.find(hash(ih), ih); (i >= 0) != ok {
				t.Fatalf("step %d: find(%x) = %d, model has it: %v", step, ih[:4], i, ok)
			}
		}
		if step%500 == 0 {
			check(step)
		}
	}
	check(30_000)
	for ih := range model {
		tb.removeAt(tb.find(hash(ih), ih))
		delete(model, ih)
	}
	check(30_001)
	tb.resize(a, seed, 0)
	checkEmpty(t, a)
}
