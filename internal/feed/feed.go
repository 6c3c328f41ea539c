// Package feed writes the RSS 2.0 feeds of published torrents: one item
// per torrent, its .torrent as the enclosure with the .torrent's size as
// the length (BEP 36), the info hash as the guid, the magnet link, and a
// Podcasting 2.0 podcast:alternateEnclosure naming the torrent and the
// web seed as two sources of the same media.
//
// It only writes: what is in a feed, and where the feed goes, is package
// publish's. Text is escaped by encoding/xml, which also replaces what
// XML cannot carry (control characters, invalid UTF-8), so any file name
// makes a well-formed feed.
package feed

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Namespaces the feeds use.
const (
	NSAtom    = "http://www.w3.org/2005/Atom"
	NSPodcast = "https://podcastindex.org/namespace/1.0"
	// NSTorrent is the torrent namespace of ezRSS, which many torrent
	// feeds and readers use for the info hash and magnet link.
	NSTorrent = "http://xmlns.ezrss.it/0.1/"
)

// TorrentType is the media type of a .torrent file.
const TorrentType = "application/x-bittorrent"

// Channel is one feed.
type Channel struct {
	Title       string
	Link        string // the site the feed belongs to
	Description string
	SelfURL     string // where the feed itself is served (atom:link rel=self)
	// LastBuild is when the feed last changed; readers (qBittorrent)
	// skip a feed whose lastBuildDate they have seen, so it must move
	// with every change, by at least a second.
	LastBuild time.Time
	Items     []Item // newest first, as they are written
}

// Item is one published torrent.
type Item struct {
	Title     string
	Published time.Time
	// GUID is the torrent's info hash in hex: stable across rebuilds of
	// the feed, and new for a new version of the file.
	GUID string
	// Link is a page or file for the item (the web seed's file), or "".
	Link string
	// TorrentURL and TorrentLength are the .torrent file's URL and size.
	TorrentURL    string
	TorrentLength int64
	Magnet        string
	// ContentLength is the torrent's data, in bytes.
	ContentLength int64
	// Media, if set, is the file itself as the web seed serves it, for
	// the alternate enclosure; nil for a torrent of several files.
	Media *Media
}

// Media is a file served over HTTP.
type Media struct {
	URL    string
	Type   string // its media type, e.g. video/x-matroska
	Length int64
}

// Write writes c as an RSS 2.0 document. It fails only if w does.
func Write(w io.Writer, c *Channel) error {
	doc := rss{
		Version: "2.0", Atom: NSAtom, Podcast: NSPodcast, Torrent: NSTorrent,
		Channel: channel{
			Title:       c.Title,
			Link:        c.Link,
			Description: c.Description,
			LastBuild:   rfc822(c.LastBuild),
			Generator:   "warden",
		},
	}
	if c.SelfURL != "" {
		doc.Channel.Self = &atomLink{Href: c.SelfURL, Rel: "self", Type: "application/rss+xml"}
	}
	doc.Channel.Items = make([]item, len(c.Items))
	for i := range c.Items {
		doc.Channel.Items[i] = itemOf(&c.Items[i])
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("feed: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func itemOf(it *Item) item {
	out := item{
		Title:     it.Title,
		Link:      it.Link,
		GUID:      guid{PermaLink: "false", Value: it.GUID},
		PubDate:   rfc822(it.Published),
		Enclosure: enclosure{URL: it.TorrentURL, Length: strconv.FormatInt(it.TorrentLength, 10), Type: TorrentType},
		InfoHash:  it.GUID,
		Magnet:    it.Magnet,
	}
	if it.ContentLength > 0 {
		out.ContentLength = strconv.FormatInt(it.ContentLength, 10)
	}
	if m := it.Media; m != nil {
		alt := &altEnclosure{Type: m.Type, Length: strconv.FormatInt(m.Length, 10)}
		alt.Sources = append(alt.Sources,
			source{URI: it.TorrentURL, ContentType: TorrentType},
			source{URI: m.URL})
		if it.Magnet != "" {
			alt.Sources = append(alt.Sources, source{URI: it.Magnet, ContentType: TorrentType})
		}
		out.Alt = alt
	}
	return out
}

// rfc822 is RSS 2.0's date format (RFC 822 with a four-digit year), in
// UTC.
func rfc822(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

// The document as encoding/xml writes it. Prefixed names are written as
// they are; the prefixes are declared on the root.
type rss struct {
	XMLName xml.Name `xml:"rss"`
	Version string   `xml:"version,attr"`
	Atom    string   `xml:"xmlns:atom,attr"`
	Podcast string   `xml:"xmlns:podcast,attr"`
	Torrent string   `xml:"xmlns:torrent,attr"`
	Channel channel  `xml:"channel"`
}

type channel struct {
	Title       string    `xml:"title"`
	Link        string    `xml:"link"`
	Description string    `xml:"description"`
	LastBuild   string    `xml:"lastBuildDate"`
	Generator   string    `xml:"generator"`
	Self        *atomLink `xml:"atom:link"`
	Items       []item    `xml:"item"`
}

type atomLink struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
}

type item struct {
	Title         string        `xml:"title"`
	Link          string        `xml:"link,omitempty"`
	GUID          guid          `xml:"guid"`
	PubDate       string        `xml:"pubDate"`
	Enclosure     enclosure     `xml:"enclosure"`
	InfoHash      string        `xml:"torrent:infoHash"`
	Magnet        string        `xml:"torrent:magnetURI,omitempty"`
	ContentLength string        `xml:"torrent:contentLength,omitempty"`
	Alt           *altEnclosure `xml:"podcast:alternateEnclosure"`
}

type guid struct {
	PermaLink string `xml:"isPermaLink,attr"`
	Value     string `xml:",chardata"`
}

type enclosure struct {
	URL    string `xml:"url,attr"`
	Length string `xml:"length,attr"`
	Type   string `xml:"type,attr"`
}

type altEnclosure struct {
	Type    string   `xml:"type,attr"`
	Length  string   `xml:"length,attr"`
	Sources []source `xml:"podcast:source"`
}

type source struct {
	URI         string `xml:"uri,attr"`
	ContentType string `xml:"contentType,attr,omitempty"`
}
