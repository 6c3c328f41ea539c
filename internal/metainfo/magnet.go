package metainfo

import (
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"warden/internal/bittorrent"
)

// ParseMagnet reads the info hashes and display name of a magnet link:
// xt=urn:btih: with 40 hex or 32 base32 characters (v1), and xt=urn:btmh:
// with a SHA-256 multihash, 1220 followed by 64 hex digits (v2).
func ParseMagnet(link string) (Hashes, error) {
	rest, ok := strings.CutPrefix(link, "magnet:?")
	if !ok {
		return Hashes{}, errors.New("magnet link must start with magnet:?")
	}
	q, err := url.ParseQuery(rest)
	if err != nil {
		return Hashes{}, fmt.Errorf("magnet link: %w", err)
	}
	h := Hashes{Name: q.Get("dn")}
	for _, xt := range q["xt"] {
		switch {
		case strings.HasPrefix(xt, "urn:btih:"):
			v1, err := parseBTIH(xt[len("urn:btih:"):])
			if err != nil {
				return Hashes{}, err
			}
			h.V1 = &v1
		case strings.HasPrefix(xt, "urn:btmh:"):
			mh := xt[len("urn:btmh:"):]
			if len(mh) != 68 || !strings.HasPrefix(mh, "1220") {
				return Hashes{}, fmt.Errorf("magnet link: urn:btmh: must be a SHA-256 multihash (1220 and 64 hex digits), got %q", mh)
			}
			v2, err := bittorrent.ParseInfoHashV2(mh[4:])
			if err != nil {
				return Hashes{}, fmt.Errorf("magnet link: urn:btmh: %w", err)
			}
			h.V2 = &v2
		}
	}
	if h.V1 == nil && h.V2 == nil {
		return Hashes{}, errors.New("magnet link has no urn:btih: or urn:btmh: info hash")
	}
	return h, nil
}

func parseBTIH(s string) (bittorrent.InfoHash, error) {
	var ih bittorrent.InfoHash
	switch len(s) {
	case 40:
		if h, err := bittorrent.ParseInfoHash(s); err == nil {
			return h, nil
		}
	case 32:
		if b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s)); err == nil {
			copy(ih[:], b)
			return ih, nil
		}
	}
	return ih, fmt.Errorf("magnet link: urn:btih: must be 40 hex or 32 base32 characters, got %q", s)
}

// Magnet returns a BEP 9 magnet link for h: xt=urn:btih: for a v1 hash,
// xt=urn:btmh:1220… for a v2 one (both for a hybrid), then dn, every
// tracker as tr and every web seed as ws, in the order given.
func Magnet(h Hashes, trackers [][]string, webSeeds []string) string {
	var b strings.Builder
	b.WriteString("magnet:?")
	sep := ""
	add := func(key, val string) {
		b.WriteString(sep + key + "=" + val)
		sep = "&"
	}
	if h.V1 != nil {
		add("xt", "urn:btih:"+h.V1.String())
	}
	if h.V2 != nil {
		add("xt", "urn:btmh:1220"+h.V2.String())
	}
	if h.Name != "" {
		add("dn", url.QueryEscape(h.Name))
	}
	for _, tier := range trackers {
		for _, tr := range tier {
			add("tr", url.QueryEscape(tr))
		}
	}
	for _, ws := range webSeeds {
		add("ws", url.QueryEscape(ws))
	}
	return b.String()
}

// Magnet returns the torrent's magnet link (see the function Magnet).
func (t *Torrent) Magnet() string {
	return Magnet(t.Hashes, t.Trackers(), t.URLList)
}
