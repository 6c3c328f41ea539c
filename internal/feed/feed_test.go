package feed

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func sample() *Channel {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	return &Channel{
		Title:       "Show & Tell",
		Link:        "http://media.example/content/Show%20&%20Tell/",
		Description: "Episodes of Show & Tell, published by warden",
		SelfURL:     "http://media.example/feeds/Show%20&%20Tell.xml",
		LastBuild:   t0.Add(time.Hour),
		Items: []Item{
			{
				Title: "ep2 <final>.mkv", Published: t0.Add(30 * time.Minute),
				GUID:       "0123456789abcdef0123456789abcdef01234567",
				Link:       "http://media.example/content/Show%20&%20Tell/ep2%20%3Cfinal%3E.mkv",
				TorrentURL: "http://media.example/torrents/0123456789abcdef0123456789abcdef01234567.torrent", TorrentLength: 1234,
				Magnet:        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=ep2&tr=http%3A%2F%2Ft%2Fannounce",
				ContentLength: 5_000_000,
				Media:         &Media{URL: "http://media.example/content/Show%20&%20Tell/ep2%20%3Cfinal%3E.mkv", Type: "video/x-matroska", Length: 5_000_000},
			},
			{
				Title: "extras", Published: t0,
				GUID:       "fedcba9876543210fedcba9876543210fedcba98",
				TorrentURL: "http://media.example/torrents/fedcba9876543210fedcba9876543210fedcba98.torrent", TorrentLength: 999,
				Magnet: "magnet:?xt=urn:btih:fedcba9876543210fedcba9876543210fedcba98", ContentLength: 77,
			},
		},
	}
}

// TestWriteGolden compares a feed with testdata/show.xml byte for byte.
func TestWriteGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "show.xml")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("feed differs from %s (go test -update to rewrite it):\n%s", golden, b.String())
	}
}

// parsed is what a namespace-aware reader finds in an item.
type parsed struct {
	Channel struct {
		Title     string `xml:"title"`
		LastBuild string `xml:"lastBuildDate"`
		Self      struct {
			Href string `xml:"href,attr"`
		} `xml:"http://www.w3.org/2005/Atom link"`
		Items []struct {
			Title string `xml:"title"`
			GUID  struct {
				PermaLink string `xml:"isPermaLink,attr"`
				Value     string `xml:",chardata"`
			} `xml:"guid"`
			PubDate   string `xml:"pubDate"`
			Enclosure struct {
				URL    string `xml:"url,attr"`
				Length string `xml:"length,attr"`
				Type   string `xml:"type,attr"`
			} `xml:"enclosure"`
			Magnet string `xml:"http://xmlns.ezrss.it/0.1/ magnetURI"`
			Alt    []struct {
				Type    string `xml:"type,attr"`
				Length  string `xml:"length,attr"`
				Sources []struct {
					URI         string `xml:"uri,attr"`
					ContentType string `xml:"contentType,attr"`
				} `xml:"https://podcastindex.org/namespace/1.0 source"`
			} `xml:"https://podcastindex.org/namespace/1.0 alternateEnclosure"`
		} `xml:"item"`
	} `xml:"channel"`
}

// TestNamespaces reads the feed back with namespaces resolved, as a
// reader does, so a prefix written wrong would show.
func TestNamespaces(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample()); err != nil {
		t.Fatal(err)
	}
	var p parsed
	if err := xml.Unmarshal(b.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	c := p.Channel
	if c.Title != "Show & Tell" || c.LastBuild != "Thu, 03 Dec 2026 13:00:00 +0000" || !strings.HasSuffix(c.Self.Href, ".xml") {
		t.Fatalf("channel: %+v", c)
	}
	if len(c.Items) != 2 {
		t.Fatalf("%d items", len(c.Items))
	}
	it := c.Items[0]
	if it.Title != "ep2 <final>.mkv" || it.GUID.Value != "0123456789abcdef0123456789abcdef01234567" || it.GUID.PermaLink != "false" ||
		it.Enclosure.Type != TorrentType || it.Enclosure.Length != "1234" || !strings.HasPrefix(it.Magnet, "magnet:?") {
		t.Fatalf("item: %+v", it)
	}
	if len(it.Alt) != 1 || it.Alt[0].Type != "video/x-matroska" || it.Alt[0].Length != "5000000" || len(it.Alt[0].Sources) != 3 ||
		it.Alt[0].Sources[0].ContentType != TorrentType || !strings.Contains(it.Alt[0].Sources[1].URI, "/content/") {
		t.Fatalf("alternate enclosure: %+v", it.Alt)
	}
	if len(c.Items[1].Alt) != 0 {
		t.Fatalf("a torrent of several files got an alternate enclosure: %+v", c.Items[1].Alt)
	}
}

// TestFeedparser checks that Debian's python3-feedparser reads the feed
// without complaint and finds every field.
func TestFeedparser(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import feedparser").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-feedparser: %v: %s (CI=true: it must be installed)", err, out)
		}
		t.Skipf("python3-feedparser not installed: %v", err)
	}
	var b bytes.Buffer
	if err := Write(&b, sample()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "feed.xml")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import feedparser, json, sys
d = feedparser.parse(sys.argv[1])
print(json.dumps({"bozo": int(d.bozo), "error": str(d.get("bozo_exception", "")), "version": d.version,
  "updated": d.feed.get("updated", ""),
  "items": [{"title": e.title, "id": e.id, "published": e.published,
             "enclosures": [{"href": x.href, "type": x.type, "length": x.length} for x in e.enclosures]}
            for e in d.entries]}))
`
	out, err := exec.Command(python, "-c", script, path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Bozo    int    `json:"bozo"`
		Error   string `json:"error"`
		Version string `json:"version"`
		Updated string `json:"updated"`
		Items   []struct {
			Title, ID, Published string
			Enclosures           []struct{ Href, Type, Length string }
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Bozo != 0 || res.Version != "rss20" {
		t.Fatalf("feedparser: bozo %d (%s), version %q", res.Bozo, res.Error, res.Version)
	}
	if len(res.Items) != 2 || res.Items[0].Title != "ep2 <final>.mkv" || res.Items[0].ID != "0123456789abcdef0123456789abcdef01234567" ||
		len(res.Items[0].Enclosures) != 1 || res.Items[0].Enclosures[0].Type != TorrentType || res.Items[0].Enclosures[0].Length != "1234" ||
		res.Updated != "Thu, 03 Dec 2026 13:00:00 +0000" {
		t.Fatalf("feedparser read: %+v", res)
	}
}

// FuzzWrite checks that any title, link and description make a feed that
// an XML reader takes, with the text back as written (less what XML cannot
// carry).
func FuzzWrite(f *testing.F) {
	f.Add("ep1.mkv", "http://x/content/ep1.mkv", "a show")       // ordinary
	f.Add("a <b> & \"c\" 'd'", "http://x/?a=1&b=2", "]]>")       // markup characters
	f.Add("bell\x07 nul\x00 ff\xff", "\x1b[31m", "\ufffe\uffff") // what XML cannot carry
	f.Fuzz(func(t *testing.T, title, link, desc string) {
		c := &Channel{Title: desc, Link: link, LastBuild: time.Unix(0, 0), Items: []Item{{
			Title: title, Link: link, GUID: "g", TorrentURL: link, Magnet: title,
			Media: &Media{URL: link, Type: desc},
		}}}
		var b bytes.Buffer
		if err := Write(&b, c); err != nil {
			t.Fatal(err)
		}
		var p parsed
		if err := xml.Unmarshal(b.Bytes(), &p); err != nil {
			t.Fatalf("not well-formed for title %q link %q desc %q: %v\n%s", title, link, desc, err, b.Bytes())
		}
		if len(p.Channel.Items) != 1 {
			t.Fatalf("%d items", len(p.Channel.Items))
		}
		if want := xmlText(title); p.Channel.Items[0].Title != want {
			t.Fatalf("title %q read back as %q, want %q", title, p.Channel.Items[0].Title, want)
		}
	})
}

// xmlText is s as XML carries it: characters outside XML's range become
// U+FFFD. Line ends are written as character references, so a reader does
// not normalize them (testdata/fuzz/FuzzWrite/593dbb9fbf3e4f0d).
func xmlText(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 || !isXMLChar(r) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
		s = s[n:]
	}
	return b.String()
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// BenchmarkWrite writes a feed of 100 items, as publish does after each
// change.
func BenchmarkWrite(b *testing.B) {
	c := sample()
	for len(c.Items) < 100 {
		c.Items = append(c.Items, c.Items[0])
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := Write(&buf, c); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
