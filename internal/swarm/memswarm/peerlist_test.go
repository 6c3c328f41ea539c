package memswarm

import (
	"math/rand/v2"
	"testing"

	"warden/internal/bittorrent"
)

// TestPick checks every way a pick's runs can fall: every list size up to
// past indexMin, every split into seeders and leechers, every requester
// position, numwant from 0 to past the window, and several random starts.
func TestPick(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for size := 0; size <= 40; size++ {
		for seeders := 0; seeders <= size; seeders += 1 + size/8 {
			var l peerList[addr4]
			for i := range size {
				k := addr4{10, 0, 0, byte(i), 0x1a, 0xe1}
				_, _, _, _, _ = l.update(l.find(k), k, i < seeders, bittorrent.EventStarted, 1, 0)
			}
			if l.len() != size || int(l.seeders) != seeders {
				t.Fatalf("list holds %d peers, %d seeders; want %d, %d", l.len(), l.seeders, size, seeders)
			}
			for self := -1; self < size; self++ {
				seeder := self >= 0 && self < seeders
				lo := 0
				if seeder {
					lo = seeders
				}
				window := size - lo
				if self >= lo {
					window--
				}
				for n := 0; n <= size+1; n++ {
					for range 3 {
						out := l.pick(self, seeder, n, rng.Uint64(), nil)
						checkPick(t, &l, out, self, lo, min(n, max(window, 0)))
					}
				}
			}
		}
	}
}

func checkPick(t *testing.T, l *peerList[addr4], out []byte, self, lo, want int) {
	t.Helper()
	if len(out) != want*6 {
		t.Fatalf("size %d, self %d, window from %d: got %d bytes, want %d peers", l.len(), self, lo, len(out), want)
	}
	got := map[addr4]bool{}
	for i := 0; i < len(out); i += 6 {
		k := addr4(out[i : i+6])
		pos := l.find(k)
		switch {
		case pos < 0:
			t.Fatalf("picked %v, not in the list", k)
		case pos == self:
			t.Fatalf("picked the requester %v", k)
		case pos < lo:
			t.Fatalf("seeder given seeder %v", k)
		case got[k]:
			t.Fatalf("picked %v twice", k)
		}
		got[k] = true
	}
}
