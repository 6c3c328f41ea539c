package memswarm

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"warden/internal/bittorrent"
)

func testLists(byHost bool) *lists {
	return &lists{arena: newArena(), mult: rand.Uint64() | 1, byHost: byHost}
}

// TestPick checks every way a pick's runs can fall: every list size up to
// past a split into buckets, every split into seeders and leechers, every
// requester position, numwant from 0 to past the window, and several
// random starts.
func TestPick(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ls := testLists(false)
	for _, size := range []int{0, 1, 2, 3, 5, 8, 13, 40, splitAt, splitAt + 1, 3*splitAt + 7} {
		for seeders := 0; seeders <= size; seeders += 1 + size/5 {
			var l peerList[addr4]
			for i := range size {
				k := addr4{10, 0, byte(i >> 8), byte(i), 0x1a, 0xe1}
				l.update(ls, l.find(ls, k), k, i < seeders, bittorrent.EventStarted, 1, 0)
			}
			if l.len() != size || l.seeders() != seeders {
				t.Fatalf("list holds %d peers, %d seeders; want %d, %d", l.len(), l.seeders(), size, seeders)
			}
			selves := []pos{none}
			for bi, b := range l.buckets() {
				for i := range b.keys {
					if i%7 == 0 || i == int(b.seeders) || i == len(b.keys)-1 {
						selves = append(selves, pos{bi, i})
					}
				}
			}
			for _, self := range selves {
				seeder := self.i >= 0 && self.i < int(l.buckets()[self.b].seeders)
				window := size
				if seeder {
					window = size - seeders
				}
				if self.i >= 0 && !seeder {
					window--
				}
				for _, n := range []int{0, 1, 2, 7, window - 1, window, window + 1, size + 1} {
					for range 3 {
						out := l.pick(self, seeder, n, rng.Uint64(), nil)
						checkPick(t, ls, &l, out, self, seeder, min(max(n, 0), max(window, 0)))
					}
				}
			}
			l.release(ls)
		}
	}
	checkEmpty(t, ls.arena)
}

func checkPick(t *testing.T, ls *lists, l *peerList[addr4], out []byte, self pos, seeder bool, want int) {
	t.Helper()
	if len(out) != want*6 {
		t.Fatalf("size %d, self %v: got %d bytes, want %d peers", l.len(), self, len(out), want)
	}
	got := map[addr4]bool{}
	for i := 0; i < len(out); i += 6 {
		k := addr4(out[i : i+6])
		p := l.find(ls, k)
		switch {
		case p.i < 0:
			t.Fatalf("picked %v, not in the list", k)
		case p == self:
			t.Fatalf("picked the requester %v", k)
		case seeder && p.i < int(l.buckets()[p.b].seeders):
			t.Fatalf("seeder given seeder %v", k)
		case got[k]:
			t.Fatalf("picked %v twice", k)
		}
		got[k] = true
	}
}

// TestListAgainstModel drives a list through random announces, stops,
// expiries and bucket splits and merges, and checks it against a plain
// map after each step: the same peers, the same seeders, every peer in the
// bucket it hashes to, partitions kept, and, once emptied, no chunk left
// in the arena. Buckets by host and by address both.
func TestListAgainstModel(t *testing.T) {
	for _, byHost := range []bool{true, false} {
		testListAgainstModel(t, testLists(byHost))
	}
}

func testListAgainstModel(t *testing.T, ls *lists) {
	rng := rand.New(rand.NewPCG(3, 4))
	var l peerList[addr6]
	type peer struct {
		seeder bool
		seen   uint32
	}
	model := map[addr6]peer{}
	now := uint32(1000)
	mostBuckets := 0
	key := func() addr6 {
		var k addr6
		k[0], k[1] = 0x20, 0x01
		k[7] = byte(rng.IntN(40)) // 40 hosts (/64s), many ports each
		k[15] = byte(rng.IntN(256))
		k[16], k[17] = byte(rng.IntN(8)), 1
		return k
	}
	for step := range 40_000 {
		k := key()
		seeder := rng.IntN(3) == 0
		ev := bittorrent.EventStarted
		// Phases: grow past several splits, then shrink back to nothing.
		if step > 20_000 && rng.IntN(4) != 0 || step%5000 > 4500 {
			ev = bittorrent.EventStopped
		}
		l.update(ls, l.find(ls, k), k, seeder, ev, now, 0)
		if ev == bittorrent.EventStopped {
			delete(model, k)
		} else {
			model[k] = peer{seeder, now}
		}
		if step%97 == 0 {
			now++
		}
		if step%997 == 0 {
			ttl := uint32(rng.IntN(200))
			l.expire(ls, now, ttl)
			for k, p := range model {
				if now-p.seen > ttl {
					delete(model, k)
				}
			}
		}
		if step%101 == 0 || step > 39_900 {
			seeders := map[addr6]bool{}
			for k, p := range model {
				seeders[k] = p.seeder
			}
			checkList(t, ls, &l, seeders)
		}
		mostBuckets = max(mostBuckets, len(l.buckets()))
	}
	if mostBuckets < 16 {
		t.Fatalf("the list never had more than %d buckets: the test does not reach its splits", mostBuckets)
	}
	for k := range model {
		l.update(ls, l.find(ls, k), k, false, bittorrent.EventStopped, now, 0)
	}
	if l.len() != 0 || l.big != nil {
		t.Fatalf("emptied list holds %d peers (big %v)", l.len(), l.big != nil)
	}
	checkEmpty(t, ls.arena)
}

func checkList[K addrKey](t *testing.T, ls *lists, l *peerList[K], model map[K]bool) {
	t.Helper()
	n, seeders := 0, 0
	for bi, b := range l.buckets() {
		for i, k := range b.keys {
			isSeeder := i < int(b.seeders)
			if want, ok := model[k]; !ok || want != isSeeder {
				t.Fatalf("bucket %d holds %x as seeder=%v; model has it %v (held %v)", bi, k, isSeeder, want, ok)
			}
			if l.bucketOf(ls, &k) != bi {
				t.Fatalf("%x in bucket %d, hashes to %d", k, bi, l.bucketOf(ls, &k))
			}
			n++
			if isSeeder {
				seeders++
			}
		}
	}
	if n != len(model) || n != l.len() || seeders != l.seeders() {
		t.Fatalf("list holds %d peers (len %d), %d seeders (count %d); model %d", n, l.len(), seeders, l.seeders(), len(model))
	}
	if nb := len(l.buckets()); nb > 1 && (n > splitAt*nb || n < mergeAt*nb) {
		t.Fatalf("%d peers in %d buckets", n, nb)
	}
}

// FuzzPeerList reads a program of announces, stops and expiries from the
// input, over few hosts and ports so that splits, merges and crowded
// buckets come quickly, runs it on an IPv4 list and checks the list
// against a map after every step.
func FuzzPeerList(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})                                // a few starts
	f.Add(bytes.Repeat([]byte{0x11, 0x22, 0x93, 0xf4}, 300)) // past a split, with stops
	f.Add(append(bytes.Repeat([]byte{0x01, 0x45}, 400), bytes.Repeat([]byte{0xc1, 0xc5}, 400)...))
	f.Fuzz(func(t *testing.T, prog []byte) {
		ls := testLists(len(prog)%2 == 0)
		var l peerList[addr4]
		type peer struct {
			seeder bool
			seen   uint32
		}
		model := map[addr4]peer{}
		now := uint32(100)
		for i := 0; i+1 < len(prog); i += 2 {
			op, arg := prog[i], prog[i+1]
			k := addr4{10, 0, 0, arg & 7, 0x1a, arg >> 3} // 8 hosts, 32 ports each
			switch op >> 6 {
			case 0, 1: // announce; the low bit of op says seeder
				seeder := op&1 == 1
				l.update(ls, l.find(ls, k), k, seeder, bittorrent.EventStarted, now, 0)
				model[k] = peer{seeder, now}
			case 2: // stop
				l.update(ls, l.find(ls, k), k, false, bittorrent.EventStopped, now, 0)
				delete(model, k)
			case 3: // time passes, then expire peers older than arg%16
				now += uint32(op & 15)
				ttl := uint32(arg % 16)
				l.expire(ls, now, ttl)
				for k, p := range model {
					if now-p.seen > ttl {
						delete(model, k)
					}
				}
			}
			seeders := map[addr4]bool{}
			for k, p := range model {
				seeders[k] = p.seeder
			}
			checkList(t, ls, &l, seeders)
		}
		l.release(ls)
		checkEmpty(t, ls.arena)
	})
}
