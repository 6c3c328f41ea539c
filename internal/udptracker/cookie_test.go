package udptracker

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCookieLifetime(t *testing.T) {
	// The clock starts 30s into a window, so an ID issued then is valid
	// until the end of the next window, 90s later.
	tests := []struct {
		name  string
		after time.Duration
		from  netip.Addr
		want  bool
	}{
		{"at once", 0, src4.Addr(), true},
		{"same window", 29 * time.Second, src4.Addr(), true},
		{"next window", 31 * time.Second, src4.Addr(), true},
		{"end of next window", 90*time.Second - 1, src4.Addr(), true},
		{"two windows later", 90 * time.Second, src4.Addr(), false},
		{"much later", 24 * time.Hour, src4.Addr(), false},
		{"an hour earlier", -time.Hour, src4.Addr(), false},
		{"another IPv4", 0, src4b.Addr(), false},
		{"same IPv4, v4-mapped", 0, netip.AddrFrom16(src4.Addr().As16()), true},
		{"an IPv6", 0, src6.Addr(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			jar := newCookieJar(time.Hour, clk.now, seededRandom(1))
			start := clk.now()
			id := jar.issue(src4.Addr(), jar.now())
			clk.set(start.Add(tt.after))
			if got := jar.valid(tt.from, id, jar.now()); got != tt.want {
				t.Errorf("issued to %v, checked from %v after %v: valid = %v, want %v", src4.Addr(), tt.from, tt.after, got, tt.want)
			}
		})
	}
}

func TestCookieEveryOffset(t *testing.T) {
	// Whatever the moment of issue, an ID works for at least one window
	// and at most two.
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, seededRandom(1))
	base := clk.now().Truncate(cookieWindow)
	for off := time.Duration(0); off < cookieWindow; off += 7 * time.Second {
		clk.set(base.Add(off))
		id := jar.issue(src6.Addr(), jar.now())
		for _, after := range []time.Duration{0, cookieWindow - 1, 2*cookieWindow - off - 1} {
			clk.set(base.Add(off + after))
			if !jar.valid(src6.Addr(), id, jar.now()) {
				t.Errorf("issued at +%v: invalid after %v", off, after)
			}
		}
		clk.set(base.Add(2 * cookieWindow))
		if jar.valid(src6.Addr(), id, jar.now()) {
			t.Errorf("issued at +%v: still valid two windows on", off)
		}
	}
}

func TestCookieRotation(t *testing.T) {
	const rotation = 10 * time.Minute
	tests := []struct {
		name      string
		rotations int // how far the clock visits before the check
		want      bool
	}{
		{"no rotation", 0, true},
		{"survives one rotation", 1, true},
		{"not two rotations", 2, false},
		{"not three rotations", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			jar := newCookieJar(rotation, clk.now, seededRandom(1))
			start := clk.now()
			id := jar.issue(src4.Addr(), jar.now())
			// Visit later periods so the keys rotate, then come back
			// within the ID's lifetime: only the key decides.
			for i := 1; i <= tt.rotations; i++ {
				clk.set(start.Add(time.Duration(i) * rotation))
				jar.valid(src4.Addr(), 0, jar.now())
			}
			clk.set(start.Add(10 * time.Second))
			if got := jar.valid(src4.Addr(), id, jar.now()); got != tt.want {
				t.Errorf("after %d rotations: valid = %v, want %v", tt.rotations, got, tt.want)
			}
		})
	}
}

func TestCookieAcrossRotationBoundary(t *testing.T) {
	const rotation = 2 * time.Minute // the minimum Validate allows
	clk := newFakeClock()
	jar := newCookieJar(rotation, clk.now, seededRandom(1))
	boundary := clk.now().Truncate(rotation).Add(rotation)
	clk.set(boundary.Add(-time.Second))
	id := jar.issue(src4.Addr(), jar.now())
	clk.set(boundary.Add(30 * time.Second))
	if !jar.valid(src4.Addr(), id, jar.now()) {
		t.Errorf("ID issued 1s before a rotation is invalid 30s after it")
	}
	if fresh := jar.issue(src4.Addr(), jar.now()); fresh == id {
		t.Errorf("a new period issues the same ID %x", id)
	}
}

func TestCookieKeysDiffer(t *testing.T) {
	clk := newFakeClock()
	a := newCookieJar(time.Hour, clk.now, nil)
	b := newCookieJar(time.Hour, clk.now, nil)
	if b.valid(src4.Addr(), a.issue(src4.Addr(), a.now()), b.now()) {
		t.Errorf("a jar with another random key accepts the ID")
	}
}

func TestCookieKeyNotLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ks := &keySet{cur: sipKey{0x1111111111111111, 0x2222222222222222}}
	log.Info("oops", "cur", ks.cur, "prev", ks.prev)
	if strings.Contains(buf.String(), "1229782938247303441") || strings.Contains(buf.String(), "1111") || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log line %q shows a key", buf.String())
	}
}

func TestCookieAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, nil)
	id := jar.issue(src6.Addr(), jar.now())
	if n := testing.AllocsPerRun(100, func() { jar.issue(src6.Addr(), jar.now()) }); n != 0 {
		t.Errorf("issue allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { jar.valid(src6.Addr(), id, jar.now()) }); n != 0 {
		t.Errorf("valid allocates %v times, want 0", n)
	}
}
