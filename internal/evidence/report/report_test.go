package report

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"image/png"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warden/internal/evidence"
	"warden/internal/evidence/report/reporttest"
)

// story is one synthetic log for the tests that only read it.
var story struct {
	once sync.Once
	dir  string
	s    reporttest.Story
	err  error
}

// storyLog writes the story's log once per test binary and returns its
// data directory. Tests must not change it.
func storyLog(t *testing.T) (string, reporttest.Story) {
	t.Helper()
	if err := writeStory(); err != nil {
		t.Fatalf("write the story's log: %v", err)
	}
	return story.dir, story.s
}

func writeStory() error {
	story.once.Do(func() {
		dir, err := mkdirTemp()
		if err != nil {
			story.err = err
			return
		}
		story.dir = dir
		story.s, story.err = reporttest.Write(dir)
	})
	return story.err
}

func readStory(t *testing.T, opts Options) (*Report, reporttest.Story) {
	t.Helper()
	dir, s := storyLog(t)
	if opts.Since.IsZero() && opts.Until.IsZero() {
		opts.Since, opts.Until = s.Since, s.Until
	}
	r, err := Read(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Read(%s) = %v", dir, err)
	}
	return r, s
}

func TestReadStory(t *testing.T) {
	r, s := readStory(t, Options{})
	if len(r.Problems) != 0 {
		t.Errorf("problems: %q", r.Problems)
	}
	if len(r.Episodes) != len(s.Abusers) {
		t.Fatalf("%d episodes, want %d (the abusers of the period): %+v", len(r.Episodes), len(s.Abusers), r.Episodes)
	}
	for i, want := range s.Abusers {
		ep := r.Episodes[i]
		// Each episode has several records: only the last counts.
		if ep.ID != want.ID || ep.Source != want.Source || ep.Requests != want.Total || ep.PeakPerSec != want.Peak ||
			ep.State != want.State || ep.Verified != want.Verified || len(ep.Timeline.Counts) != want.Buckets {
			t.Errorf("episode %d = %s %s requests %d peak %v state %s verified %v buckets %d; want the last record: %+v",
				i, ep.ID, ep.Source, ep.Requests, ep.PeakPerSec, ep.State, ep.Verified, len(ep.Timeline.Counts), want)
		}
		if ep.ASN != want.ASN || ep.Org != want.Org || ep.Country != want.Country || ep.AbuseEmail != want.AbuseEmail {
			t.Errorf("episode %s attributed to AS%d %q %q %q, want AS%d %q %q %q", ep.ID, ep.ASN, ep.Org, ep.Country, ep.AbuseEmail,
				want.ASN, want.Org, want.Country, want.AbuseEmail)
		}
	}
	if len(r.Organisations) != 2 {
		t.Fatalf("%d organisations, want 2", len(r.Organisations))
	}
	flood := r.Organisations[0]
	if flood.ASN != 64500 || flood.AbuseEmail != "abuse@transit.example" || !slices.Equal(flood.Sources, []string{"198.51.100.7", "198.51.100.99"}) ||
		flood.Requests != s.Abusers[0].Total+s.Abusers[1].Total {
		t.Errorf("first organisation = %+v, want AS64500 with both its sources", flood)
	}
	if slow := r.Organisations[1]; slow.ASN != 64511 || slow.AbuseEmail != "" || !slices.Equal(slow.Sources, []string{"203.0.113.9"}) {
		t.Errorf("second organisation = %+v, want AS64511, no abuse address", slow)
	}
	var revoked, registered *Hash
	for i := range r.Hashes {
		switch r.Hashes[i].InfoHash {
		case s.Revoked:
			revoked = &r.Hashes[i]
		case s.Registered:
			registered = &r.Hashes[i]
		}
	}
	if revoked == nil || !revoked.Revoked || revoked.Reason != s.RevokeReason || revoked.Registered || revoked.Sources != 2 {
		t.Errorf("revoked hash in the top list: %+v, want revoked for %q, asked by 2 sources", revoked, s.RevokeReason)
	}
	if registered == nil || !registered.Registered || registered.Revoked {
		t.Errorf("registered hash in the top list: %+v", registered)
	}
	if r.Reporter.Email != s.Contact || r.Reporter.From != "tracker.abuse_contact" || r.Reporter.Org != "tracker.example" {
		t.Errorf("reporter = %+v, want %s from the config record", r.Reporter, s.Contact)
	}
	if !r.Attribution.Recorded || len(r.Attribution.Sources) != 2 || r.Attribution.Sources[1].SHA256 != s.LocationSHA256 {
		t.Errorf("attribution = %+v, want the two databases of the config record", r.Attribution)
	}
	cp, err := evidence.LatestCheckpoint(context.Background(), story.dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Checkpoint.Note != string(cp.Note) || r.Checkpoint.Size != int64(s.Records) || r.Records.Read != int64(s.Records) {
		t.Errorf("checkpoint %d of %d records, read %d; want the latest (%d), covering all %d", r.Checkpoint.Seq,
			r.Checkpoint.Size, r.Records.Read, cp.Seq, s.Records)
	}
	if want := map[string]int64{"ban": 1, "registry.revoke": 1}; !mapsEqual(r.OperatorActions, want) {
		t.Errorf("operator actions = %v, want %v (the config and registry adds are before the period)", r.OperatorActions, want)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPeriod(t *testing.T) {
	dir, s := storyLog(t)
	ids := func(names ...string) []string { return names }
	flood, syn, slow, earlier := s.Abusers[0].ID, s.Abusers[1].ID, s.Abusers[2].ID, s.Earlier.ID
	base := reporttest.Base
	tests := []struct {
		name         string
		since, until time.Time
		want         []string // IDs, sorted
	}{
		{"whole log", time.Time{}, time.Time{}, ids(flood, syn, slow, earlier)},
		{"the story's period", s.Since, s.Until, ids(flood, syn, slow)},
		{"until before the flood", time.Time{}, base.Add(-time.Second), ids(earlier)},
		// Overlap, not containment: the slow abuser runs 10:00:20-10:20:19.
		{"a minute in the middle of the slow abuser", base.Add(10 * time.Minute), base.Add(11 * time.Minute), ids(slow)},
		{"the last second of the flood", base.Add(179 * time.Second), base.Add(179 * time.Second), ids(flood, slow)},
		{"after everything", base.Add(time.Hour), time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Read(context.Background(), dir, Options{Since: tt.since, Until: tt.until})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ep := range r.Episodes {
				got = append(got, ep.ID)
			}
			slices.Sort(got)
			slices.Sort(tt.want)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Read(since %v, until %v) episodes = %v, want %v", tt.since, tt.until, got, tt.want)
			}
		})
	}
}

// TestJSONNames checks the names scripts depend on.
func TestJSONNames(t *testing.T) {
	r, s := readStory(t, Options{})
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Episodes []map[string]json.RawMessage `json:"episodes"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Episodes) != len(s.Abusers) {
		t.Fatalf("%d episodes in JSON, want %d", len(doc.Episodes), len(s.Abusers))
	}
	for i, ep := range doc.Episodes {
		for _, k := range []string{"source", "kind", "first_seen", "last_seen", "requests", "peak_per_sec", "mean_per_sec",
			"verified", "asn", "org", "country", "hashes", "actions"} {
			if _, ok := ep[k]; !ok {
				t.Errorf("episode %d has no %q", i, k)
			}
		}
		var n uint64
		if err := json.Unmarshal(ep["requests"], &n); err != nil || n != s.Abusers[i].Total {
			t.Errorf("episode %d requests = %s, want the number %d", i, ep["requests"], s.Abusers[i].Total)
		}
		var hs []struct {
			InfoHash string `json:"info_hash"`
		}
		if err := json.Unmarshal(ep["hashes"], &hs); err != nil {
			t.Errorf("episode %d hashes = %s: %v", i, ep["hashes"], err)
		}
	}
	if strings.Contains(buf.String(), s.Legit) || strings.Contains(buf.String(), s.Earlier.Source) {
		t.Errorf("the JSON names %s or %s, who formed no episode of the period", s.Legit, s.Earlier.Source)
	}
}

// renderAll writes every format.
func renderAll(t *testing.T, r *Report) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name, write := range map[string]func(*bytes.Buffer) error{
		"json": func(b *bytes.Buffer) error { return r.WriteJSON(b) },
		"md":   func(b *bytes.Buffer) error { return r.WriteMarkdown(b, "chart.png") },
		"html": func(b *bytes.Buffer) error { return r.WriteHTML(b) },
		"xarf": func(b *bytes.Buffer) error { return r.WriteXARF(b) },
		"png":  func(b *bytes.Buffer) error { return r.WritePNG(b) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil && !(name == "png" && errors.Is(err, ErrNoChart)) {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = b.Bytes()
	}
	return out
}

func TestNoOutsiderNamed(t *testing.T) {
	r, s := readStory(t, Options{})
	for name, b := range renderAll(t, r) {
		for _, who := range []string{s.Legit, s.Earlier.Source, s.Earlier.Org} {
			if bytes.Contains(b, []byte(who)) {
				t.Errorf("%s names %s, which formed no episode of the period", name, who)
			}
		}
	}
}

func TestMarkdownAndPNG(t *testing.T) {
	r, s := readStory(t, Options{})
	out := renderAll(t, r)
	md := string(out["md"])
	for _, want := range []string{"![Requests per second over time for the top sources](chart.png)", "## By organisation", "## By source",
		"| AS64500 Example Transit B.V. | NL | abuse@transit.example |", "revoked: " + s.RevokeReason, "## Evidence checkpoint", r.Checkpoint.Note,
		"To: abuse@transit.example", "The rate axis is logarithmic."} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	img, err := png.Decode(bytes.NewReader(out["png"]))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 960 || b.Dy() != 360 {
		t.Errorf("PNG is %v, want 960×360", b)
	}
	// Every series is drawn in its colour.
	c := newChart(r.Episodes, DefaultTop)
	for _, series := range c.Series {
		want := parseHex(series.Color)
		n := 0
		for y := range 360 {
			for x := range 960 {
				if r, g, b, _ := img.At(x, y).RGBA(); uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(b>>8) == want.B {
					n++
				}
			}
		}
		if n < 50 {
			t.Errorf("series %s: %d pixels of %s in the PNG, want a line", series.Label, n, series.Color)
		}
	}
}

// TestHTMLChart checks the page is self-contained and that its chart
// draws each top source's timeline, a point per bucket.
func TestHTMLChart(t *testing.T) {
	r, _ := readStory(t, Options{})
	page := renderAll(t, r)["html"]
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var polylines []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script", "link", "img", "iframe", "object", "embed", "base":
				t.Errorf("the page has a <%s> element", n.Data)
			case "polyline":
				polylines = append(polylines, n)
			}
			for _, a := range n.Attr {
				if a.Key == "src" || a.Key == "href" || strings.HasPrefix(a.Key, "on") || strings.Contains(a.Val, "url(") {
					t.Errorf("<%s %s=%q> may load or run something", n.Data, a.Key, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for _, bad := range []string{"@import", "@font-face", "url("} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("the page holds %q", bad)
		}
	}
	var drawable []Episode
	for _, ep := range r.Episodes {
		if ep.drawable() {
			drawable = append(drawable, ep)
		}
	}
	if len(polylines) != min(len(drawable), DefaultTop) || len(polylines) == 0 {
		t.Fatalf("%d polylines, want one per top source with a timeline (%d)", len(polylines), len(drawable))
	}
	for i, pl := range polylines {
		var points string
		for _, a := range pl.Attr {
			if a.Key == "points" {
				points = a.Val
			}
		}
		if got, want := len(strings.Fields(points)), len(drawable[i].Timeline.Counts); got != want {
			t.Errorf("polyline %d (%s) has %d points, want one per bucket of its timeline: %d", i, drawable[i].Source, got, want)
		}
	}
	for _, want := range []string{"<title>Abuse report: tracker.example, ", r.Generated.Format("2006-01-02 15:04:05"), "sha256 " + story.s.LocationSHA256,
		"@media print"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestXARFSchema(t *testing.T) {
	r, _ := readStory(t, Options{})
	var groups []struct {
		AbuseEmail string            `json:"abuse_email"`
		Reports    []json.RawMessage `json:"reports"`
	}
	if err := json.Unmarshal(renderAll(t, r)["xarf"], &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups[0].Reports) != 2 || len(groups[1].Reports) != 1 {
		t.Fatalf("XARF groups %+v, want 2 organisations with 2 and 1 reports", groups)
	}
	sc := &jsonSchema{}
	ids := map[string]bool{}
	for _, g := range groups {
		for _, raw := range g.Reports {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			for _, e := range sc.validate(filepath.Join("testdata", "xarf", "types", "connection-scraping.json"), v) {
				t.Errorf("XARF report breaks the schema: %s", e)
			}
			id := v.(map[string]any)["report_id"].(string)
			if ids[id] {
				t.Errorf("report_id %s given twice", id)
			}
			ids[id] = true
		}
	}
}

// TestSchemaCheckerRejects makes sure the checker above fails what it
// should, so a green TestXARFSchema means something.
func TestSchemaCheckerRejects(t *testing.T) {
	r, _ := readStory(t, Options{})
	good, err := json.Marshal(r.Organisations[0].XARF[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"no total_requests", func(m map[string]any) { delete(m, "total_requests") }},
		{"bad uuid", func(m map[string]any) { m["report_id"] = "not-a-uuid" }},
		{"bad category", func(m map[string]any) { m["category"] = "content" }},
		{"bad contact", func(m map[string]any) { m["reporter"].(map[string]any)["contact"] = "nobody" }},
		{"extra contact field", func(m map[string]any) { m["sender"].(map[string]any)["phone"] = "1" }},
		{"bad tag", func(m map[string]any) { m["tags"] = []any{"No Namespace"} }},
		{"long description", func(m map[string]any) { m["description"] = strings.Repeat("x", 1001) }},
		{"bad protocol", func(m map[string]any) { m["protocol"] = "icmp" }},
		{"bad time", func(m map[string]any) { m["first_seen"] = "yesterday" }},
	}
	sc := &jsonSchema{}
	schema := filepath.Join("testdata", "xarf", "types", "connection-scraping.json")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			if errs := sc.validate(schema, m); len(errs) != 0 {
				t.Fatalf("the good report fails: %q", errs)
			}
			tt.change(m)
			if errs := sc.validate(schema, m); len(errs) == 0 {
				t.Errorf("the checker accepts a report with %s", tt.name)
			}
		})
	}
}

func TestNotice(t *testing.T) {
	r, s := readStory(t, Options{})
	n := r.Organisations[0].Notice
	for _, want := range []string{
		"To: abuse@transit.example\n",
		"Subject: Abusive traffic to our BitTorrent tracker from AS64500 Example Transit B.V., 2026-12-03 10:00–10:02 UTC\n",
		"contact " + s.Contact,
		"198.51.100.7\n  2026-12-03 10:00:00 to 2026-12-03 10:02:59 (3m0s)\n  1,382,314 requests: peak 8,000/s",
		"verified: ", "spoofable: 79,800 of them",
		"revoked: " + s.RevokeReason,
		"records 11 and 13 of our tamper-evident evidence log",
		"-----BEGIN WARDEN CHECKPOINT-----\n" + r.Checkpoint.Note + "-----END WARDEN CHECKPOINT-----\n",
		"Verifier key: " + r.Checkpoint.Key,
		"networks file /etc/warden/networks.tsv (dated 2026-11-20, sha256 ",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("notice lacks %q:\n%s", want, n)
		}
	}
	if n2 := r.Organisations[1].Notice; !strings.Contains(n2, "To: (no abuse address") || !strings.Contains(n2, "libloc /usr/share/libloc-location/location.db (IPFire Project") {
		t.Errorf("the second notice does not say it has no address, or misses its attribution:\n%s", n2)
	}
}

// newLog opens a fresh log in a temporary directory; add appends to it.
func newLog(t *testing.T) (string, *evidence.Log) {
	t.Helper()
	dir := t.TempDir()
	l, err := evidence.Open(dir, evidence.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dir, l
}

func add(t *testing.T, l *evidence.Log, kind evidence.Kind, at time.Time, body any) {
	t.Helper()
	r, err := evidence.NewRecord(kind, at, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func episodeBody(id, src string, first time.Time, total uint64) map[string]any {
	return map[string]any{"id": id, "state": "closed", "source": src, "kind": "rate", "first_seen": first,
		"last_seen": first.Add(9 * time.Second), "total": total, "peak_per_sec": float64(total) / 5,
		"timeline": map[string]any{"start": first, "bucket_seconds": 1, "counts": []uint64{total}}}
}

func TestNoConfigRecord(t *testing.T) {
	dir, l := newLog(t)
	at := reporttest.Base
	add(t, l, evidence.KindEpisode, at, episodeBody("E-1-192.0.2.9", "192.0.2.9", at, 500))
	l.Close()
	r, err := Read(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Attribution.Recorded || !strings.Contains(r.attributionSummary(), "Attribution source not recorded") {
		t.Errorf("attribution = %+v, %q; want not recorded", r.Attribution, r.attributionSummary())
	}
	if r.Organisations[0].XARFProblem == "" || r.WriteXARF(&bytes.Buffer{}) == nil {
		t.Errorf("XARF without a reporter address: problem %q, want one and WriteXARF to fail", r.Organisations[0].XARFProblem)
	}
	if !strings.Contains(r.Organisations[0].Notice, "(our contact: give --contact)") {
		t.Errorf("the notice does not say who is missing:\n%s", r.Organisations[0].Notice)
	}
	r, err = Read(context.Background(), dir, Options{Contact: "Ops <ops@publisher.example>", Org: "Publisher"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Reporter.Email != "ops@publisher.example" || r.Reporter.From != "option" || len(r.Organisations[0].XARF) != 1 {
		t.Errorf("with --contact: reporter %+v, %d XARF reports", r.Reporter, len(r.Organisations[0].XARF))
	}
}

// TestBadRecords: records a report cannot use are listed, never dropped
// silently, and never stop the report.
func TestBadRecords(t *testing.T) {
	dir, l := newLog(t)
	at := reporttest.Base
	add(t, l, evidence.KindEpisode, at, episodeBody("E-1-192.0.2.9", "192.0.2.9", at, 500))       // 0
	add(t, l, evidence.KindEpisode, at, map[string]any{"id": 5})                                  // 1: id not a string
	add(t, l, evidence.KindEpisode, at, map[string]any{"id": "E-2-x", "first_seen": "yesterday"}) // 2
	add(t, l, evidence.KindEpisode, at, map[string]any{"source": "192.0.2.10"})                   // 3: no id
	bad := episodeBody("E-3-192.0.2.11", "192.0.2.11", at, 7)
	bad["timeline"] = map[string]any{"start": at, "bucket_seconds": 0, "counts": []int{1, 2}}
	add(t, l, evidence.KindEpisode, at, bad)                                                     // 4: undrawable
	add(t, l, evidence.KindEpisode, at, map[string]any{"id": "E-1-192.0.2.9", "total": -1})      // 5: a later record of 0, broken
	add(t, l, evidence.KindConfig, at, map[string]any{"tracker": "not an object"})               // 6
	add(t, l, evidence.KindRegistryRevoke, at, map[string]any{"info_hash": "zz", "reason": "x"}) // 7
	l.Close()
	r, err := Read(context.Background(), dir, Options{Contact: "ops@publisher.example"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"record 1 (episode)", "record 2 (episode)", "record 3 (episode)", "record 5 (episode E-1-192.0.2.9)",
		"record 4 (episode E-3-192.0.2.11): timeline with bucket_seconds 0", "record 6 (config)", "record 7 (registry.revoke)"}
	all := strings.Join(r.Problems, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("problems lack %q:\n%s", w, all)
		}
	}
	if len(r.Episodes) != 1 || r.Episodes[0].Source != "192.0.2.11" {
		t.Errorf("episodes %+v, want only the undrawable one (the other's last record is broken)", r.Episodes)
	}
	out := renderAll(t, r)
	if err := r.WritePNG(&bytes.Buffer{}); !errors.Is(err, ErrNoChart) {
		t.Errorf("WritePNG with no drawable timeline = %v, want ErrNoChart", err)
	}
	if !bytes.Contains(out["html"], []byte("No episode has a timeline to draw.")) {
		t.Errorf("the page does not say it has no chart")
	}
}

// TestTamperedLog: a report never rests on a record changed after it was
// signed.
func TestTamperedLog(t *testing.T) {
	dir, s := storyLog(t)
	copyDir := t.TempDir()
	for _, name := range []string{evidence.DBFile, evidence.PubFile} {
		copyFile(t, filepath.Join(dir, name), filepath.Join(copyDir, name))
	}
	db, err := sql.Open("sqlite", filepath.Join(copyDir, evidence.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE records SET data = replace(data, '"total":1382314', '"total":13823') WHERE data LIKE '%"total":1382314%'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("changed %d records, want the flood's last", n)
	}
	db.Close()
	_, err = Read(context.Background(), copyDir, Options{Since: s.Since, Until: s.Until})
	var ve *evidence.VerifyError
	if !errors.Is(err, evidence.ErrTampered) || !errors.As(err, &ve) || ve.Index != 13 {
		t.Errorf("Read of a log whose record 13 was changed = %v, want a VerifyError naming it", err)
	}
}

func TestFromRecordsKeepsTheLastRecord(t *testing.T) {
	at := reporttest.Base
	body := func(total uint64) []byte {
		b, _ := json.Marshal(episodeBody("E-1-192.0.2.9", "192.0.2.9", at, total))
		return b
	}
	recs := []evidence.BundleEntry{
		{Index: 4, Kind: evidence.KindEpisode, Time: at, Body: body(900)},
		{Index: 2, Kind: evidence.KindEpisode, Time: at, Body: body(100)},
	}
	r, err := FromRecords(recs, evidence.Checkpoint{Seq: 3, Size: 5}, "key", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Episodes) != 1 || r.Episodes[0].Requests != 900 || r.Episodes[0].Record != 4 {
		t.Errorf("episodes %+v, want record 4's 900 requests", r.Episodes)
	}
}

func TestTooLarge(t *testing.T) {
	b := newBuilder(Options{})
	b.maxKept = 10_000
	at := reporttest.Base
	var err error
	for i := 0; err == nil && i < 1000; i++ {
		body, _ := json.Marshal(episodeBody(string(rune('a'+i%26))+strings.Repeat("x", i), "192.0.2.9", at, 1))
		err = b.add(evidence.BundleEntry{Index: int64(i), Kind: evidence.KindEpisode, Time: at, Body: body})
	}
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("adding episodes past the bound: %v, want ErrTooLarge", err)
	}
}

// TestConfigShapes: the reporter's contact and the attribution databases
// are read from a config record whether they sit at its top or under
// "config", as serve writes its whole configuration (Go field names).
func TestConfigShapes(t *testing.T) {
	tests := []struct {
		name        string
		body        any
		wantContact string
		wantSources int // -1: attribution not recorded
	}{
		{"top level", map[string]any{"tracker": map[string]any{"abuse_contact": "abuse@a.example"},
			"attribution": []map[string]any{{"kind": "mmdb", "path": "/a.mmdb"}}}, "abuse@a.example", 1},
		{"serve's record, Go names", map[string]any{"version": "warden dev", "config": map[string]any{
			"Data": "/var/lib/warden", "Tracker": map[string]any{"AbuseContact": "abuse@b.example", "Mode": "allowlist"}}}, "abuse@b.example", -1},
		{"under config, snake case, with sources", map[string]any{"config": map[string]any{
			"tracker": map[string]any{"abuse_contact": "abuse@c.example"}},
			"attribution": []map[string]any{{"Kind": "location_db", "SHA256": "ab", "Networks": 3}}}, "abuse@c.example", 1},
		{"no databases configured", map[string]any{"attribution": []any{}}, "", 0},
		{"nothing", map[string]any{"version": "x"}, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, l := newLog(t)
			at := reporttest.Base
			add(t, l, evidence.KindConfig, at.Add(-time.Minute), tt.body)
			add(t, l, evidence.KindEpisode, at, episodeBody("E-1-192.0.2.9", "192.0.2.9", at, 500))
			l.Close()
			r, err := Read(context.Background(), dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Problems) != 0 {
				t.Errorf("problems: %q", r.Problems)
			}
			if r.Reporter.Contact != tt.wantContact || (tt.wantContact != "" && r.Reporter.From != "tracker.abuse_contact") {
				t.Errorf("reporter = %+v, want contact %q from tracker.abuse_contact", r.Reporter, tt.wantContact)
			}
			recorded := tt.wantSources >= 0
			if r.Attribution.Recorded != recorded || (recorded && len(r.Attribution.Sources) != tt.wantSources) {
				t.Errorf("attribution = %+v, want recorded %v with %d sources", r.Attribution, recorded, tt.wantSources)
			}
			if notRecorded := strings.Contains(r.attributionSummary(), "Attribution source not recorded"); notRecorded == recorded {
				t.Errorf("summary %q for recorded=%v", r.attributionSummary(), recorded)
			}
		})
	}
}
