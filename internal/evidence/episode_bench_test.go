package evidence

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"warden/internal/bittorrent"
)

// BenchmarkKnock is the cost of counting one request on the request path.
func BenchmarkKnock(b *testing.B) {
	var pid bittorrent.PeerID
	copy(pid[:], "-qB4520-")
	hashes := []bittorrent.InfoHash{{1}}
	run := func(b *testing.B, k Knock, abuser bool) {
		e, _, _ := newTestEpisodes(b, testEpisodeConfig())
		if abuser {
			burst(e, k, 0, 100)
		}
		now := at(1, 0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			e.Knock(&k, now.Add(time.Duration(i)*time.Microsecond))
		}
	}
	b.Run("quiet-source", func(b *testing.B) {
		run(b, Knock{Src: netip.MustParseAddr("192.0.2.1"), Kind: ReqAnnounce, Verified: true, Hashes: hashes}, false)
	})
	b.Run("episode", func(b *testing.B) {
		run(b, Knock{Src: netip.MustParseAddr("198.51.100.7"), Kind: ReqAnnounce, Verified: true, Action: ActRefused,
			Hashes: hashes, PeerID: pid, HasPeerID: true, Port: 6881}, true)
	})
	b.Run("episode-http", func(b *testing.B) {
		run(b, Knock{Src: netip.MustParseAddr("198.51.100.7"), Kind: ReqAnnounce, Verified: true, Action: ActLimited,
			UserAgent: "qBittorrent/4.5.2"}, true)
	})
	b.Run("spoofed", func(b *testing.B) {
		e, _, _ := newTestEpisodes(b, DefaultEpisodeConfig().WithGuardRates(50, 500))
		r := rand.New(rand.NewPCG(5, 6))
		srcs := make([]netip.Addr, 1<<16)
		for i := range srcs {
			srcs[i] = spoofed(r)
		}
		now := at(1, 0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := Knock{Src: srcs[i&(len(srcs)-1)], Kind: ReqGarbage}
			i++
			e.Knock(&k, now.Add(time.Duration(i)*time.Microsecond))
		}
	})
	b.Run("parallel-sources", func(b *testing.B) {
		e, _, _ := newTestEpisodes(b, DefaultEpisodeConfig().WithGuardRates(1e6, 1e6))
		now := at(1, 0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 7))
			k := Knock{Kind: ReqAnnounce, Verified: true, Hashes: hashes}
			for pb.Next() {
				k.Src = netip.AddrFrom4([4]byte{10, 0, byte(r.Uint32N(16)), 1})
				e.Knock(&k, now)
			}
		})
	})
}
