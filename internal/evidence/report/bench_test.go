package report

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"warden/internal/evidence"
	"warden/internal/evidence/report/reporttest"
)

// benchLog writes a log of n episodes from n sources in 50
// organisations, three records each (opened, updated, closed), each with
// a full timeline of 600 buckets and five hashes.
func benchLog(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	l, err := evidence.Open(dir, evidence.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		first := reporttest.Base.Add(time.Duration(i) * time.Second)
		src := fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)
		counts := make([]uint64, 600)
		for j := range counts {
			counts[j] = uint64(100 + j%7)
		}
		ep := evidence.Episode{
			ID: fmt.Sprintf("E-%d-%s", first.Unix(), src), Source: src, Prefix: fmt.Sprintf("198.18.%d.0/24", i/250),
			Kind: evidence.EpisodeRefusals, FirstSeen: first, ASN: uint32(64500 + i%50), Org: fmt.Sprintf("Org %d", i%50),
			Country: "NL", Total: 62000, PeakPerSec: 106, MeanPerSec: 103,
			Timeline: evidence.Timeline{Start: first, BucketSeconds: 1, Counts: counts},
			Actions:  evidence.Actions{Refused: 62000},
		}
		ep.Requests.Announce.Verified = 62000
		for k := range 5 {
			ep.Hashes = append(ep.Hashes, evidence.HashCount{InfoHash: reporttest.Hash(fmt.Sprint(i%97, k)), Count: 1000})
		}
		for _, state := range []string{evidence.EpisodeOpen, evidence.EpisodeOpen, evidence.EpisodeClosed} {
			ep.State, ep.LastSeen = state, first.Add(599*time.Second)
			r, err := evidence.NewRecord(evidence.KindEpisode, ep.LastSeen, ep)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Append(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkRead reads a data directory's log into a report: every record
// proved against the checkpoint, the last of each episode kept.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("episodes=%d", n), func(b *testing.B) {
			dir := benchLog(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Read(context.Background(), dir, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite renders a report of 1000 episodes in each format.
func BenchmarkWrite(b *testing.B) {
	r, err := Read(context.Background(), benchLog(b, 1000), Options{Contact: "abuse@tracker.example"})
	if err != nil {
		b.Fatal(err)
	}
	for name, write := range map[string]func(io.Writer) error{
		"json": r.WriteJSON,
		"md":   func(w io.Writer) error { return r.WriteMarkdown(w, "c.png") },
		"html": r.WriteHTML,
		"xarf": r.WriteXARF,
		"png":  r.WritePNG,
	} {
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := write(&buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "bytes/op")
		})
	}
}
