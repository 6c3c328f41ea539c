package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"warden/internal/evidence"
	"warden/internal/evidence/report/reporttest"
)

// FuzzRecord hands one body to the report as an episode, a config and a
// revocation record, then renders every format: whatever a record holds,
// the report must not panic, must say what it could not use, and must
// stay in proportion to its input.
func FuzzRecord(f *testing.F) {
	at := reporttest.Base
	seed := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(episodeBody("E-1-192.0.2.9", "192.0.2.9", at, 500)))                                                                                // a plain episode
	f.Add([]byte(`{}`))                                                                                                                            // nothing
	f.Add([]byte(`{"id":"x","first_seen":"2026-12-03T10:00:00Z","last_seen":"1970-01-01T00:00:00Z"}`))                                             // times out of order
	f.Add([]byte(`{"id":"x","timeline":{"start":"2026-12-03T10:00:00Z","bucket_seconds":9223372036854775807,"counts":[1,2,3]}}`))                  // a bucket too long to draw
	f.Add([]byte(`{"id":"x","timeline":{"start":"0001-01-01T00:00:00Z","bucket_seconds":1,"counts":[18446744073709551615]}}`))                     // year 1, the largest count
	f.Add([]byte(`{"id":"x","source":"\u001b[2J\u202e","org":"<script>alert(1)</script>","user_agents":[{"value":"a|b` + "`" + `c","count":1}]}`)) // hostile text
	f.Add([]byte(`{"id":"x","hashes":[{"info_hash":"zz","count":1}]}`))                                                                            // a bad hash
	f.Add([]byte(`{"tracker":{"abuse_contact":"mailto:a@b.example"},"attribution":[{"kind":"mmdb","date":"2026-01-01T00:00:00Z"}]}`))              // a config
	f.Fuzz(func(t *testing.T, body []byte) {
		b := newBuilder(Options{Contact: "ops@publisher.example", Now: at})
		for i, kind := range []evidence.Kind{evidence.KindConfig, evidence.KindRegistryRevoke, evidence.KindEpisode} {
			if err := b.add(evidence.BundleEntry{Index: int64(i), Kind: kind, Time: at, Logged: at, Body: body}); err != nil {
				t.Fatalf("add: %v", err)
			}
		}
		r := b.finish(evidence.Checkpoint{Seq: 2, Size: 3, Time: at, Note: []byte("note\n")}, "key", 0, 0)
		limit := 64*len(body) + 1<<20
		for name, write := range map[string]func(*bytes.Buffer) error{
			"json": func(w *bytes.Buffer) error { return r.WriteJSON(w) },
			"md":   func(w *bytes.Buffer) error { return r.WriteMarkdown(w, "c.png") },
			"html": func(w *bytes.Buffer) error { return r.WriteHTML(w) },
			"xarf": func(w *bytes.Buffer) error { return r.WriteXARF(w) },
			"png":  func(w *bytes.Buffer) error { return r.WritePNG(w) },
		} {
			var w bytes.Buffer
			if err := write(&w); err != nil && !errors.Is(err, ErrNoChart) {
				t.Fatalf("%s: %v", name, err)
			}
			if w.Len() > limit {
				t.Fatalf("%s: %d bytes from a %d-byte record", name, w.Len(), len(body))
			}
		}
	})
}

// FuzzBundle feeds the bundle reader what Export writes, and damaged
// versions of it: an error, never a panic.
func FuzzBundle(f *testing.F) {
	f.Add(smallBundle(f))                         // a bundle as Export writes it
	f.Add(smallBundle(f)[:len(smallBundle(f))/2]) // cut in the middle
	f.Add([]byte(`{"checkpoint":"","key":"","format":"","records":[{"index":0,"record":{"body":{},"index":0,"kind":"episode"}}]}`))
	f.Add([]byte(`{"records":[{"index":1,"record":{"body":{},"index":0,"kind":"episode"}}]}`)) // index mismatch
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newBuilder(Options{})
		if _, err := readBundle(bytes.NewReader(data), b); err != nil {
			return
		}
		b.finish(evidence.Checkpoint{}, "", 0, 0)
	})
}

// smallBundle exports a log of two records: a large seed slows the fuzzer
// to a crawl.
func smallBundle(f *testing.F) []byte {
	f.Helper()
	dir := f.TempDir()
	l, err := evidence.Open(dir, evidence.DefaultConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	at := reporttest.Base
	for _, r := range []struct {
		kind evidence.Kind
		body any
	}{
		{evidence.KindConfig, map[string]any{"tracker": map[string]any{"abuse_contact": "a@b.example"}}},
		{evidence.KindEpisode, episodeBody("E-1-192.0.2.9", "192.0.2.9", at, 5)},
	} {
		rec, err := evidence.NewRecord(r.kind, at, r.body)
		if err == nil {
			err = l.Append(context.Background(), rec)
		}
		if err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Export(context.Background(), dir, time.Time{}, &buf); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
