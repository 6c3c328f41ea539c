package limit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// steppedClock is a wall clock and a monotonic clock that a test moves
// apart, as an NTP step or a resumed VM does: time.Now's readings carry
// both, and the Limiter must measure by the monotonic one.
type steppedClock struct {
	wall time.Time     // what the callers pass as now
	mono time.Duration // what the Limiter reads as elapsed
}

func (c *steppedClock) advance(d time.Duration) {
	c.wall = c.wall.Add(d)
	c.mono += d
}

// install makes l read c's monotonic clock.
func (c *steppedClock) install(l *Limiter) { l.mono = func() time.Duration { return c.mono } }

// TestClockStepBack steps the wall clock back an hour after an hour of
// traffic within every limit. Measured by the wall clock, every source
// seen in that hour would have its bucket up to an hour in the future, and
// be banned on its next request; on the monotonic clock nothing happens.
func TestClockStepBack(t *testing.T) {
	// 10s is burst/rate: the shortest step that bans, measured by the
	// wall clock, a source that has just sent a request.
	for _, step := range []time.Duration{10 * time.Second, time.Minute, time.Hour} {
		t.Run(fmt.Sprintf("back %v", step), func(t *testing.T) {
			cfg := testConfig()
			cfg.BanAfter = DefaultConfig().BanAfter
			l := New(cfg)
			clk := &steppedClock{wall: t0}
			clk.install(l)
			srcs := make([]netip.Addr, 200)
			for i := range srcs {
				srcs[i] = netip.AddrFrom4([4]byte{198, 51, byte(i / 50), byte(i)})
			}
			// An hour of traffic: every source twice a minute, well within
			// its rate.
			for s := range 7200 {
				if v := l.Allow(srcs[s%len(srcs)], clk.wall); v != Allowed {
					t.Fatalf("before the step, request %d = %v", s, v)
				}
				clk.advance(time.Hour / 7200)
			}
			for _, src := range srcs { // and each once more, just before the step
				l.Allow(src, clk.wall)
			}
			clk.wall = clk.wall.Add(-step)
			clk.mono += time.Millisecond
			for i, src := range srcs {
				if v := l.Allow(src, clk.wall); v != Allowed {
					t.Fatalf("after a step back of %v, source %d (%v) = %v, want allowed", step, i, src, v)
				}
			}
			if bans := l.Bans(clk.wall); len(bans) != 0 {
				t.Errorf("after a step back of %v, %d bans, want none; the first: %+v", step, len(bans), bans[0])
			}
			if st := l.Stats(); st.Limited+st.Banned != 0 {
				t.Errorf("Stats = %+v, want nothing limited or banned", st)
			}
		})
	}
}

// TestClockStepForward steps the wall clock forward a day: a running ban
// must not end early, and a bucket emptied just before must not refill.
func TestClockStepForward(t *testing.T) {
	cfg := testConfig()
	l := New(cfg)
	clk := &steppedClock{wall: t0}
	clk.install(l)
	key := netip.MustParsePrefix("192.0.2.7/32")
	if _, err := l.Ban(key, time.Hour, clk.wall); err != nil {
		t.Fatal(err)
	}
	heavy := mustAddr("192.0.2.99")
	if a, _, _ := count(l, heavy, clk.wall, cfg.Burst+10); a != cfg.Burst {
		t.Fatalf("burst: %d allowed, want %d", a, cfg.Burst)
	}
	clk.wall = clk.wall.Add(24 * time.Hour)
	if v := l.Allow(key.Addr(), clk.wall); v != Banned {
		t.Errorf("banned source after the wall clock jumped a day = %v, want banned", v)
	}
	if v := l.Allow(heavy, clk.wall); v != Limited {
		t.Errorf("empty bucket after the wall clock jumped a day = %v, want limited", v)
	}
}

// TestBansWallClock checks that Bans and Ban report wall-clock times as
// the caller's clock has them now, however that clock has stepped since
// the ban began.
func TestBansWallClock(t *testing.T) {
	l := New(testConfig())
	clk := &steppedClock{wall: t0}
	clk.install(l)
	key := netip.MustParsePrefix("192.0.2.7/32")
	b, err := l.Ban(key, time.Hour, clk.wall)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Since.Equal(t0) || !b.Until.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Ban = since %v until %v, want %v and an hour later", b.Since, b.Until, t0)
	}
	clk.advance(10 * time.Minute)
	clk.wall = clk.wall.Add(-time.Hour) // stepped back
	bans := l.Bans(clk.wall)
	if len(bans) != 1 {
		t.Fatalf("Bans = %+v, want one", bans)
	}
	wantSince, wantUntil := clk.wall.Add(-10*time.Minute), clk.wall.Add(50*time.Minute)
	if !bans[0].Since.Equal(wantSince) || !bans[0].Until.Equal(wantUntil) {
		t.Errorf("after a step back, Bans = since %v until %v; want %v until %v (10 min ago, 50 min ahead, on the clock as it reads now)",
			bans[0].Since, bans[0].Until, wantSince, wantUntil)
	}
}

// TestClockRealTime drives a Limiter with time.Now, whose readings carry
// the monotonic clock, and with the same readings stripped of it: both
// measure the same intervals while the wall clock does not step.
func TestClockRealTime(t *testing.T) {
	l := New(testConfig())
	a := time.Now()
	b := a.Add(1500 * time.Millisecond)
	if got := l.ns(b) - l.ns(a); got != int64(1500*time.Millisecond) {
		t.Errorf("ns(now+1.5s)-ns(now) = %d, want 1.5e9", got)
	}
	// The wall and monotonic clocks are read apart, and NTP may slew the
	// wall clock: close is enough.
	if got := time.Duration(l.ns(b.Round(0)) - l.ns(a)); got < 1499*time.Millisecond || got > 1501*time.Millisecond {
		t.Errorf("without a monotonic reading: %v, want 1.5s", got)
	}
	if got := l.ns(t0); got <= 0 {
		t.Errorf("ns(%v), years before New, = %d, want positive", t0, got)
	}
}
