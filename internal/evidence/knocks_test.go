package evidence

import (
	"net/netip"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/tracker"
)

func hash(i int) bittorrent.InfoHash {
	var ih bittorrent.InfoHash
	ih[0], ih[19] = byte(i>>8), byte(i)
	return ih
}

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }

func TestRefusalsCountAndRank(t *testing.T) {
	k := NewKnocks()
	now := time.Unix(1_800_000_000, 0)
	// One heavy source asking for one hash, then many one-off sources,
	// spread over seconds so nothing is sampled.
	for i := range 1000 {
		k.Refused(hash(1), netip.MustParseAddr("::ffff:198.51.100.7"), tracker.RefusedUnregistered, now.Add(time.Duration(i)*time.Millisecond))
	}
	for i := range 1000 {
		k.Refused(hash(100+i), addr(i), tracker.RefusedRevoked, now.Add(2*time.Second+time.Duration(i)*time.Millisecond))
	}
	r := k.Refusals(3)
	if r.Unregistered != 1000 || r.Revoked != 1000 || r.SampleRate != 1 {
		t.Fatalf("Refusals = %d unregistered, %d revoked, rate %v; want 1000, 1000, 1", r.Unregistered, r.Revoked, r.SampleRate)
	}
	if len(r.TopSources) != 3 || r.TopSources[0].Key != netip.MustParseAddr("198.51.100.7") || r.TopSources[0].Guaranteed < 1000-topKeys {
		t.Fatalf("TopSources = %+v, want the heavy source first (unmapped), guaranteed near 1000", r.TopSources)
	}
	if r.TopHashes[0].Key != hash(1) {
		t.Fatalf("TopHashes[0] = %v, want %v", r.TopHashes[0].Key, hash(1))
	}
	for _, e := range r.TopSources[1:] {
		if e.Guaranteed > 1 {
			t.Errorf("one-off source %v guaranteed %d, want at most 1", e.Key, e.Guaranteed)
		}
	}
}

// TestSampledCountsAreScaled checks that a flood far above exactPerSec,
// fed to the list as a sample, still reads as about what was sent.
func TestSampledCountsAreScaled(t *testing.T) {
	k := NewKnocks()
	now := time.Unix(1_800_000_000, 0)
	src := netip.MustParseAddr("198.51.100.9")
	const sent = 200_000 // in one second
	for range sent {
		k.Dropped(src, limit.Limited, now)
	}
	o := k.Offenders(1)
	if o.Limited != sent || o.SampleRate != 1.0/sampleEvery {
		t.Fatalf("Offenders = %d limited at rate %v; want %d at 1/%d", o.Limited, o.SampleRate, sent, sampleEvery)
	}
	if got := float64(o.Top[0].Count); got < 0.9*sent || got > 1.1*sent {
		t.Fatalf("estimated count %v for %d sent; want within 10%%", got, sent)
	}
}

func TestBlockedCountedNotRanked(t *testing.T) {
	k := NewKnocks()
	now := time.Unix(1_800_000_000, 0)
	k.Dropped(addr(1), limit.Blocked, now)
	k.Dropped(addr(2), limit.Banned, now)
	o := k.Offenders(10)
	if o.Blocked != 1 || o.Banned != 1 || len(o.Top) != 1 || o.Top[0].Key != addr(2) {
		t.Fatalf("Offenders = %+v; want 1 blocked (unranked), 1 banned ranked", o)
	}
}

func TestDecay(t *testing.T) {
	k := NewKnocks()
	now := time.Unix(1_800_000_000, 0)
	for i := range 100 {
		k.Dropped(addr(1), limit.Limited, now.Add(time.Duration(i)*time.Millisecond))
	}
	k.Decay()
	if c := k.Offenders(1).Top[0].Count; c != 50 {
		t.Fatalf("count after Decay = %d, want 50", c)
	}
	if k.Offenders(1).Limited != 100 {
		t.Fatal("Decay changed the totals; it should only age the lists")
	}
}

func TestSinkAllocs(t *testing.T) {
	k := NewKnocks()
	now := time.Unix(1_800_000_000, 0)
	k.Refused(hash(1), addr(1), tracker.RefusedUnregistered, now)
	k.Dropped(addr(1), limit.Limited, now)
	if n := testing.AllocsPerRun(1000, func() {
		k.Refused(hash(1), addr(1), tracker.RefusedUnregistered, now)
		k.Dropped(addr(1), limit.Limited, now)
	}); n != 0 {
		t.Fatalf("sinks allocate %v times per call, want 0", n)
	}
}
