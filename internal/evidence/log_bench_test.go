package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// episodeBody is what an abuse episode record will roughly hold.
type episodeBody struct {
	Source   netip.Addr `json:"source"`
	Prefix   string     `json:"prefix"`
	Kind     string     `json:"kind"`
	Requests uint64     `json:"requests"`
	Dropped  uint64     `json:"dropped"`
	From     time.Time  `json:"from"`
	To       time.Time  `json:"to"`
	Hashes   []string   `json:"info_hashes"`
}

var sinkErr error

func benchEpisode(i int) episodeBody {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	return episodeBody{
		Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Prefix: "192.0.2.0/24", Kind: "udp_flood",
		Requests: 123456, Dropped: 120000, From: now, To: now.Add(time.Minute),
		Hashes: []string{"aabbccddeeff00112233445566778899aabbccdd"},
	}
}

// runLog opens a log in a fresh directory with Run going, as serve will.
func runLog(b *testing.B) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; l.Close() })
	return l
}

// BenchmarkAppend is the cost to the caller of appending a record that
// is already built. Every 20,000 the queue is emptied as a write would
// take it, but without writing (BenchmarkWrite measures that), so every
// record is accepted.
func BenchmarkAppend(b *testing.B) {
	l, err := Open(b.TempDir(), DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r, err := NewRecord(KindEpisode, time.Now(), benchEpisode(1))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := l.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
		if n++; n%20_000 == 0 {
			l.qmu.Lock()
			l.queue, l.spare = l.spare[:0], l.queue
			l.queueBytes = 0
			l.qmu.Unlock()
		}
	}
}

// BenchmarkAppendSaturated appends as fast as it can with Run writing in
// the background: far faster than the disk takes them, so once 16 MiB
// wait most are refused (refused/op), and counted, rather than waited for.
func BenchmarkAppendSaturated(b *testing.B) {
	l := runLog(b)
	r, err := NewRecord(KindEpisode, time.Now(), benchEpisode(1))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Append(ctx, r); err != nil && !errors.Is(err, ErrQueueFull) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(l.Stats().Dropped)/float64(b.N), "refused/op")
}

func BenchmarkAppendSaturatedParallel(b *testing.B) {
	l := runLog(b)
	r, err := NewRecord(KindEpisode, time.Now(), benchEpisode(1))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(ctx, r); err != nil && !errors.Is(err, ErrQueueFull) {
				sinkErr = err
			}
		}
	})
	b.ReportMetric(float64(l.Stats().Dropped)/float64(b.N), "refused/op")
}

// BenchmarkNewRecordAppend is building an episode record (JSON and its
// canonical form) and appending it: the whole cost to a caller.
func BenchmarkNewRecordAppend(b *testing.B) {
	l := runLog(b)
	body := benchEpisode(1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewRecord(KindEpisode, body.From, body)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Append(ctx, r); err != nil && !errors.Is(err, ErrQueueFull) {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite is the cost on disk: records written and fsynced in
// batches of the given size (one transaction each, as one FlushInterval's
// worth), with a checkpoint signed every SignInterval. records/s is the
// sustained rate.
func BenchmarkWrite(b *testing.B) {
	for _, batch := range []int{1, 100, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			l, err := Open(b.TempDir(), DefaultConfig(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rs := make([]Record, 64)
			for i := range rs {
				if rs[i], err = NewRecord(KindEpisode, time.Now(), benchEpisode(i)); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := l.Append(ctx, rs[n%len(rs)]); err != nil {
					b.Fatal(err)
				}
				if n++; n%batch == 0 {
					if _, err := l.flush(ctx, false, false); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := l.flush(ctx, false, false); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkVerify is Verify's cost per record of a log of 20,000.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(dir, DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	const n = 20_000
	ctx := context.Background()
	for i := range n {
		r, _ := NewRecord(KindEpisode, time.Now(), benchEpisode(i))
		l.Append(ctx, r)
		if i%4096 == 0 {
			l.flush(ctx, true, false)
		}
	}
	l.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, dir, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}

// BenchmarkCanonicalJSON compares the parser with the Decoder-based
// reference on an episode body.
func BenchmarkCanonicalJSON(b *testing.B) {
	body, err := json.Marshal(benchEpisode(1))
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range []struct {
		name string
		f    func([]byte) ([]byte, error)
	}{{"parser", canonicalJSON}, {"reference", canonicalJSONRef}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := impl.f(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
