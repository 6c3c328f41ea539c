package limit

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// floodSize is the number of distinct sources the memory test feeds: ten
// million, or two million under the race detector (which runs Allow about
// twenty times slower) or -short.
func floodSize() int {
	if raceEnabled || testing.Short() {
		return 2_000_000
	}
	return 10_000_000
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestMemoryFlat feeds ten million distinct random sources, IPv4 and IPv6,
// to a Limiter and checks that the heap did not grow: the table allocated
// by New is all it ever uses.
func TestMemoryFlat(t *testing.T) {
	before := heapInuse()
	l := New(DefaultConfig())
	afterNew := heapInuse()
	mem := l.MemoryBytes()
	grew := int(afterNew - before)
	if setsOffHeap {
		grew += len(l.sets) * setBytes // mapped outside the heap by newSets
	}
	if grew < mem-64<<10 || grew > DefaultConfig().TableBytes+1<<20 {
		t.Errorf("New took %d bytes (heap, plus the mapped table), want about MemoryBytes (%d)", grew, mem)
	}
	n := floodSize()
	r := rand.New(rand.NewPCG(1, 2))
	now := t0
	for i := range n {
		var src netip.Addr
		if i%4 == 3 {
			src = distinct6(r.Uint64())
		} else {
			src = distinct4(uint32(i))
		}
		l.Allow(src, now)
		now = now.Add(100 * time.Nanosecond)
	}
	after := heapInuse()
	flood := int64(after) - int64(afterNew)
	t.Logf("%d sources: MemoryBytes %d, HeapInuse %d -> %d (%+d), evictions %d", n, mem, afterNew, after, flood, l.Stats().Evictions)
	if flood > 256<<10 {
		t.Errorf("HeapInuse grew by %d bytes over %d sources, want ~0", flood, n)
	}
	if l.MemoryBytes() != mem {
		t.Errorf("MemoryBytes changed from %d to %d", mem, l.MemoryBytes())
	}
	if s := l.Stats(); s.Allowed+s.Limited+s.Banned != uint64(n) {
		t.Errorf("Stats = %+v, want %d verdicts", s, n)
	}
	runtime.KeepAlive(l)
}

// TestHeavyHitterResidency hides one source sending ten times its rate
// among a million spoofed one-off sources, twenty times more keys than the
// table holds, and checks that it is still held to its rate and banned.
func TestHeavyHitterResidency(t *testing.T) {
	for _, bans := range []bool{false, true} {
		c := testConfig() // 1 MiB: about 50,000 keys
		c.RatePerSec, c.Burst = 10, 20
		if bans {
			c.BanAfter, c.BanWindow = 50, 10*time.Second
		}
		l := New(c)
		heavy := mustAddr("192.0.2.200")
		const spoofed, seconds = 1_000_000, 10
		perHeavy := spoofed / (seconds * 100) // heavy sends 100/s
		allowed, banned := 0, false
		for i := range spoofed {
			now := t0.Add(time.Duration(i) * seconds * time.Second / spoofed)
			l.Allow(distinct4(uint32(i)+1<<31), now)
			if i%perHeavy == 0 {
				switch l.Allow(heavy, now) {
				case Allowed:
					allowed++
				case Banned:
					banned = true
				}
			}
		}
		if keys := len(l.sets) * ways; keys > spoofed/10 {
			t.Fatalf("the table holds %d keys: no pressure from %d sources", keys, spoofed)
		}
		s := l.Stats()
		if !bans {
			// 20 at once, then one per 100ms for 10s (the last request at 9.99s).
			if want := 20 + 99; allowed != want {
				t.Errorf("heavy hitter: %d allowed in %ds among %d one-offs, want %d", allowed, seconds, spoofed, want)
			}
			continue
		}
		if !banned || len(l.Bans(t0.Add(time.Second))) != 1 {
			t.Errorf("heavy hitter not banned among %d one-offs (allowed %d)", spoofed, allowed)
		}
		t.Logf("bans=%v: heavy allowed %d, evictions %d, stats %+v", bans, allowed, s.Evictions, s)
	}
}

// TestEvictionChurn measures the attack that eviction invites: flooding a
// source's set with keys that drain their buckets, so that the source is
// evicted and comes back with a fresh bucket. It runs with and without
// inheritance of the evicted tat, and also measures what inheritance costs
// honest newcomers during the flood.
func TestEvictionChurn(t *testing.T) {
	type result struct {
		attacker      int     // requests the attacker got through in 10s
		newcomerBurst float64 // mean allowed of a 20-request burst from a new honest source
		evictions     uint64
		fairAttacker  int
	}
	run := func(inherit bool) result {
		c := testConfig()
		c.RatePerSec, c.Burst = 10, 20
		c.PrefixRatePerSec, c.PrefixBurst = 1e6, 1e6
		c.MaxBans = 8
		c.TableBytes = layoutFor(c).minBytes + 15*setBytes // 16 sets, 112 ways
		l := New(c)
		l.inherit = inherit
		attacker := mustAddr("192.0.2.1")
		var res result
		newcomers, newcomerAllowed := 0, 0
		const seconds, attackerPerSec, drainersPerSec = 10, 100, 1000
		for ms := range seconds * 1000 {
			now := t0.Add(time.Duration(ms) * time.Millisecond)
			// A drainer: a spoofed address that sends its whole burst and
			// one more, from a few /24s so that the prefix keys stay few.
			if ms%(1000/drainersPerSec) == 0 {
				count(l, netip.AddrFrom4([4]byte{10, 0, byte(ms >> 8), byte(ms)}), now, 21)
			}
			if ms%(1000/attackerPerSec) == 0 && l.Allow(attacker, now) == Allowed {
				res.attacker++
			}
			if ms%100 == 50 {
				a, _, _ := count(l, distinct4(uint32(ms)+3<<30), now, 20)
				newcomers++
				newcomerAllowed += a
			}
		}
		res.newcomerBurst = float64(newcomerAllowed) / float64(newcomers)
		res.evictions = l.Stats().Evictions
		res.fairAttacker = 20 + 10*seconds - 1
		return res
	}
	with, without := run(true), run(false)
	t.Logf("inherit:    attacker %d allowed (fair %d), honest newcomer burst %.1f/20, evictions %d", with.attacker, with.fairAttacker, with.newcomerBurst, with.evictions)
	t.Logf("no inherit: attacker %d allowed (fair %d), honest newcomer burst %.1f/20, evictions %d", without.attacker, without.fairAttacker, without.newcomerBurst, without.evictions)
	// Each time it comes back the attacker may send one request (the cap
	// on inheritance), so it gains a little: over 200 runs (the hash seeds
	// differ) the median was 118 of a fair 119 and the worst 181. Without
	// inheritance it gains a whole burst each time: 755 to 1000.
	if with.attacker > 2*with.fairAttacker {
		t.Errorf("with inheritance the attacker got %d through, more than twice its fair %d", with.attacker, with.fairAttacker)
	}
	if without.attacker < 3*with.attacker {
		t.Errorf("churn gained little without inheritance (%d vs %d): the test no longer measures the attack", without.attacker, with.attacker)
	}
}

// TestAllowAllocs guards the zero-allocation contract of every path.
func TestAllowAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c := DefaultConfig()
	c.TableBytes = 1 << 20
	c.MaxBans = 1024 // more than the runs of "banning"
	c.BanAfter, c.BanWindow = 10, time.Second
	l := New(c)
	now := t0
	var i uint32
	paths := map[string]func(){
		"hot": func() { l.Allow(mustAddr("192.0.2.1"), now) },
		"new sources": func() {
			i++
			l.Allow(distinct4(i), now)
		},
		"ipv6": func() {
			i++
			l.Allow(distinct6(uint64(i)), now)
		},
		"banning": func() {
			i++
			src := distinct4(i + 1<<31)
			for range 1000 {
				if l.Allow(src, now) == Banned {
					return
				}
			}
			panic("not banned")
		},
		"banned": func() { l.Allow(mustAddr("192.0.2.1"), now) },
		"batch": func() {
			var srcs [20]netip.Addr
			var vs [20]Verdict
			for j := range srcs {
				i++
				srcs[j] = distinct4(i)
			}
			l.AllowBatch(srcs[:], now, vs[:])
		},
		"stats": func() { _ = l.Stats() },
	}
	for _, name := range []string{"hot", "new sources", "ipv6", "banning", "banned", "batch", "stats"} {
		if name == "banned" {
			for range 1000 {
				if l.Allow(mustAddr("192.0.2.1"), now) == Banned {
					break
				}
			}
			if l.Allow(mustAddr("192.0.2.1"), now) != Banned {
				t.Fatal("the hot source is not banned")
			}
		}
		if n := testing.AllocsPerRun(200, paths[name]); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}

// TestConcurrent hammers shared and private sources from many goroutines,
// with Bans, Stats and Unban running beside them, and checks the limits
// still hold. Run it with -race.
func TestConcurrent(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 1000, 100
	c.PrefixRatePerSec, c.PrefixBurst = 3000, 300
	c.BanAfter, c.BanWindow = 1000, time.Second
	l := New(c)
	shared := []netip.Addr{mustAddr("192.0.2.1"), mustAddr("192.0.2.2"), mustAddr("192.0.2.3")}
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	const workers, calls = 8, 20_000
	var allowed [3]atomic.Int64
	var total, addrUnbans, prefixUnbans atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			now := time.Unix(0, clock.Load())
			_ = l.Stats()
			for _, b := range l.Bans(now) {
				if l.Unban(b.Prefix) && b.Prefix.Bits() == 24 {
					prefixUnbans.Add(1)
				} else {
					addrUnbans.Add(1)
				}
			}
			runtime.Gosched()
		}
	})
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			batch := make([]netip.Addr, 8)
			verdicts := make([]Verdict, 8)
			for i := range calls {
				now := time.Unix(0, clock.Add(int64(time.Microsecond)))
				if i%16 == 0 {
					for j := range batch {
						batch[j] = distinct4(r.Uint32())
					}
					l.AllowBatch(batch, now, verdicts)
					total.Add(int64(len(batch)))
					continue
				}
				k := r.IntN(4)
				if k == 3 {
					l.Allow(distinct4(r.Uint32()), now)
				} else if l.Allow(shared[k], now) == Allowed {
					allowed[k].Add(1)
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	side.Wait()
	elapsed := time.Duration(clock.Load() - t0.UnixNano())
	sum := int64(0)
	for k := range shared {
		a := allowed[k].Load()
		sum += a
		// Each Unban refills a bucket: allow one more burst for each.
		if max := int64(100 + 1000*elapsed.Seconds() + 1); a > max+100*addrUnbans.Load() {
			t.Errorf("%v: %d allowed in %v, more than %d + 100 per Unban (%d)", shared[k], a, elapsed, max, addrUnbans.Load())
		}
	}
	if max := int64(300 + 3000*elapsed.Seconds() + 1); sum > max+300*prefixUnbans.Load() {
		t.Errorf("the /24: %d allowed in %v, more than %d + 300 per Unban (%d)", sum, elapsed, max, prefixUnbans.Load())
	}
	s := l.Stats()
	if got := s.Allowed + s.Limited + s.Banned; got != uint64(total.Load()) {
		t.Errorf("Stats count %d verdicts, want %d", got, total.Load())
	}
	t.Logf("%v of fake time, %d calls: %+v; shared /24 allowed %d; unbans %d addresses, %d prefixes",
		elapsed, total.Load(), s, sum, addrUnbans.Load(), prefixUnbans.Load())
}
