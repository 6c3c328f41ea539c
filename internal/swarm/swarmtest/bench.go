package swarmtest

import (
	"fmt"
	"runtime"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
)

var sinkResp bittorrent.AnnounceResponse

// Bench measures announces into swarms of several sizes, serially and in
// parallel, and the memory each stored peer costs.
func Bench(b *testing.B, newStore func() swarm.Store) {
	for _, n := range []int{1, 1_000, 100_000} {
		b.Run(fmt.Sprintf("announce/peers=%d", n), func(b *testing.B) {
			s := newStore()
			for i := range n {
				announce(s, Req(Hash(1), Addr4(i), uint64(i%2), bittorrent.EventStarted), 0)
			}
			req := Req(Hash(1), Addr4(n/2), 1, bittorrent.EventNone)
			b.ReportAllocs()
			for b.Loop() {
				s.Announce(req, 50, &sinkResp, 0, nil)
			}
		})
	}
	b.Run("announce/parallel/torrents=10000", func(b *testing.B) {
		s := newStore()
		for i := range 10_000 {
			for j := range 10 {
				announce(s, Req(Hash(i), Addr4(j), uint64(j%2), bittorrent.EventStarted), 0)
			}
		}
		reqs := make([]*bittorrent.AnnounceRequest, 10_000)
		for i := range reqs {
			reqs[i] = Req(Hash(i), Addr4(i%10), 1, bittorrent.EventNone)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var resp bittorrent.AnnounceResponse
			i := 0
			for pb.Next() {
				i++
				s.Announce(reqs[i%len(reqs)], 50, &resp, 0, nil)
			}
		})
	})
	b.Run("memory/torrents=100000xpeers=10", func(b *testing.B) {
		const torrents, peers = 100_000, 10
		for b.Loop() {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s := newStore()
			for i := range torrents {
				for j := range peers {
					announce(s, Req(Hash(i), Addr4(j), uint64(j%2), bittorrent.EventStarted), 0)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(torrents*peers), "bytes/peer")
			runtime.KeepAlive(s)
		}
	})
}
