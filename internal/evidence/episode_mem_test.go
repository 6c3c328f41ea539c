package evidence

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"warden/internal/bittorrent"
)

// spoofed returns a random source, IPv4 or IPv6.
func spoofed(r *rand.Rand) netip.Addr {
	x := r.Uint64()
	if x&1 == 0 {
		return netip.AddrFrom4([4]byte{byte(x >> 8), byte(x >> 16), byte(x >> 24), byte(x >> 32)})
	}
	var b [16]byte
	b[0] = 0x20
	for i := 1; i < 16; i++ {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(b)
}

// TestEpisodeFixedMemory sends 10 million spoofed one-off sources
// through the sink (one million a second), with an abuser at 8,000 a
// second among them: the heap does not grow with the sources, the
// spoofed sources open nothing, and the abuser's episode counts every one
// of its requests.
func TestEpisodeFixedMemory(t *testing.T) {
	n := 10_000_000
	if raceEnabled || testing.Short() {
		n = 1_000_000
	}
	const perSec, abuserEvery = 1_000_000, 125 // 8,000/s from the abuser
	e, _, _ := newTestEpisodes(t, testEpisodeConfig())
	abuser := netip.MustParseAddr("198.51.100.7")
	r := rand.New(rand.NewPCG(1, 2))
	var pid bittorrent.PeerID
	copy(pid[:], "-qB4520-")
	hashes := []bittorrent.InfoHash{{0xbb}}
	k := Knock{Kind: ReqGarbage}
	a := Knock{Src: abuser, Kind: ReqAnnounce, Verified: true, Action: ActRefused, Hashes: hashes, PeerID: pid, HasPeerID: true, Port: 6881}

	send := func(from, to int) (abused uint64) {
		for i := from; i < to; i++ {
			now := t0.Add(time.Duration(i) * time.Second / perSec)
			if i%abuserEvery == 0 {
				e.Knock(&a, now)
				abused++
				continue
			}
			k.Src = spoofed(r)
			e.Knock(&k, now)
		}
		return abused
	}
	// Warm up: the table fills, the episode opens, its samples fill.
	warm := 2 * perSec
	abused := send(0, warm)
	before := heapInUse()
	abused += send(warm, n)
	after := heapInUse()
	t.Logf("%d events: heap in use %d KiB before, %d KiB after", n, before>>10, after>>10)
	if after > before+256<<10 {
		t.Errorf("heap grew by %d KiB over %d spoofed sources", (after-before)>>10, n-warm)
	}
	eps := e.Open()
	if len(eps) != 1 || eps[0].Source != "198.51.100.7" {
		for _, ep := range eps {
			t.Logf("episode %s %s total %d", ep.Source, ep.Kind, ep.Total)
		}
		t.Fatalf("%d episodes, want the abuser's alone", len(eps))
	}
	ep := eps[0]
	if ep.Total != abused || ep.PeakPerSec != perSec/abuserEvery || ep.Actions.Refused != abused {
		t.Errorf("abuser's episode: total %d peak %v refused %d, want %d, %d, %d", ep.Total, ep.PeakPerSec, ep.Actions.Refused, abused, perSec/abuserEvery, abused)
	}
	if st := e.Stats(); st.Untracked != 0 {
		t.Errorf("untracked events: %d", st.Untracked)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestKnockAllocs guards the request path: counting allocates nothing,
// whether or not the source has an episode open.
func TestKnockAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e, _, _ := newTestEpisodes(t, testEpisodeConfig())
	var pid bittorrent.PeerID
	copy(pid[:], "-TR4050-")
	hashes := []bittorrent.InfoHash{{1}, {2}, {0xaa}}
	abuser := Knock{Src: netip.MustParseAddr("198.51.100.7"), Kind: ReqAnnounce, Verified: true, Action: ActRefused,
		Hashes: hashes, PeerID: pid, HasPeerID: true, Port: 51413, UserAgent: "Transmission/4.0.5"}
	burst(e, abuser, 0, 100)
	quiet := Knock{Src: netip.MustParseAddr("192.0.2.1"), Kind: ReqAnnounce, Verified: true, Hashes: hashes[:1]}
	r := rand.New(rand.NewPCG(3, 4))
	now := at(1, 0)
	tests := []struct {
		name string
		fn   func()
	}{
		{"quiet source", func() { e.Knock(&quiet, now) }},
		{"source in an episode", func() { e.Knock(&abuser, now) }},
		{"spoofed sources", func() { k := Knock{Src: spoofed(r), Kind: ReqGarbage}; e.Knock(&k, now) }},
		{"sensor", func() { e.Sensed(spoofed(r), 0, 3, now) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per event, want 0", tt.name, n)
		}
	}
}
