package swarmtest

import (
	"context"
	"errors"
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
				announce(b, s, Req(Hash(1), Addr4(i), uint64(i%2), bittorrent.EventStarted), 0)
			}
			req := Req(Hash(1), Addr4(n/2), 1, bittorrent.EventNone)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Announce(ctx, req, 50, &sinkResp, 0, swarm.Undecided); err != nil {
					if err := readmit(ctx, s, req, &sinkResp, err); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	b.Run("announce/parallel/torrents=10000", func(b *testing.B) {
		s := newStore()
		for i := range 10_000 {
			for j := range 10 {
				announce(b, s, Req(Hash(i), Addr4(j), uint64(j%2), bittorrent.EventStarted), 0)
			}
		}
		reqs := make([]*bittorrent.AnnounceRequest, 10_000)
		for i := range reqs {
			reqs[i] = Req(Hash(i), Addr4(i%10), 1, bittorrent.EventNone)
		}
		b.ReportAllocs()
		b.ResetTimer() // filling the store is not what is measured
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			var resp bittorrent.AnnounceResponse
			i := 0
			for pb.Next() {
				i++
				req := reqs[i%len(reqs)]
				if err := s.Announce(ctx, req, 50, &resp, 0, swarm.Undecided); err != nil {
					if err := readmit(ctx, s, req, &resp, err); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	})
	// Memory per stored peer: the heap the store holds after every peer
	// announced once, and what it says it holds outside the heap, over the
	// number of peers. Small swarms pay more for their torrent's record.
	for _, m := range []struct{ torrents, peers int }{{100_000, 10}, {10_000, 100}, {100, 10_000}} {
		b.Run(fmt.Sprintf("memory/torrents=%dxpeers=%d", m.torrents, m.peers), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := newStore()
				for i := range m.torrents {
					for j := range m.peers {
						announce(b, s, Req(Hash(i), Addr4(j), uint64(j%2), bittorrent.EventStarted), 0)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				offHeap := s.Stats().OffHeapBytes
				b.ReportMetric(float64(int64(after.HeapAlloc-before.HeapAlloc)+offHeap)/float64(m.torrents*m.peers), "bytes/peer")
				b.ReportMetric(float64(offHeap)/float64(m.torrents*m.peers), "offheap-bytes/peer")
				runtime.KeepAlive(s)
			}
		})
	}
}

// readmit finishes the tracker's handshake after a steady announce (ticket
// 0, not admitted) failed with err: a store that remembers no tickets is
// told the torrent is admitted; any other error is returned. The store's
// fast path is measured without this call.
func readmit(ctx context.Context, s swarm.Store, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse, err error) error {
	if !errors.Is(err, swarm.ErrNotAdmitted) {
		return err
	}
	return s.Announce(ctx, req, 50, resp, 0, swarm.Registered)
}
