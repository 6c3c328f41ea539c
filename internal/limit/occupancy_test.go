package limit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestOccupancy(t *testing.T) {
	l := New(testConfig())
	live, slots := l.Occupancy(t0)
	if live != 0 || slots != len(l.sets)*ways {
		t.Fatalf("empty table: Occupancy = %d, %d; want 0, %d", live, slots, len(l.sets)*ways)
	}
	// 100 addresses in 100 /24s: each request leaves two keys (address
	// and prefix) with a bucket short of one token.
	for i := range 100 {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i), 0, 1}), t0)
	}
	if live, _ := l.Occupancy(t0); live < 190 || live > 200 {
		t.Errorf("after 100 sources: live = %d, want about 200 (a few keys may share a way)", live)
	}
	// Once the buckets are full again, the keys hold no state worth
	// keeping.
	if live, _ := l.Occupancy(t0.Add(time.Minute)); live != 0 {
		t.Errorf("a minute later: live = %d, want 0", live)
	}
}

// TestOccupancySampled checks the estimate of a table larger than the
// sample against the exact count.
func TestOccupancySampled(t *testing.T) {
	c := testConfig()
	c.TableBytes = 64 << 20
	l := New(c)
	if len(l.sets) <= occupancySample {
		t.Fatalf("table of %d sets is not sampled", len(l.sets))
	}
	for i := range 200_000 {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0)
	}
	exact := 0
	for i := range l.sets {
		for w := range ways {
			if l.sets[i].tag[w] != 0 && l.sets[i].tat[w] > l.ns(t0) {
				exact++
			}
		}
	}
	live, _ := l.Occupancy(t0)
	if d := float64(live-exact) / float64(exact); d < -0.05 || d > 0.05 {
		t.Errorf("sampled estimate %d, exact %d: off by %.1f%%", live, exact, 100*d)
	}
}

func TestOccupancyAllocs(t *testing.T) {
	l := New(testConfig())
	if n := testing.AllocsPerRun(10, func() { l.Occupancy(t0) }); n != 0 {
		t.Errorf("Occupancy allocates %v times", n)
	}
}

func BenchmarkOccupancy(b *testing.B) {
	for _, mb := range []int{1, 64} {
		b.Run(fmt.Sprintf("table=%dMiB", mb), func(b *testing.B) {
			c := testConfig()
			c.TableBytes = mb << 20
			l := New(c)
			b.ReportAllocs()
			for b.Loop() {
				l.Occupancy(t0)
			}
		})
	}
}
