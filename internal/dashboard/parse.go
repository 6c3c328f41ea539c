package dashboard

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"warden/internal/metainfo"
)

// maxUpload bounds a .torrent uploaded through the page: far above any
// real one's size, far below the server's memory.
const maxUpload = 16 << 20

// torrentContentType is a .torrent file's media type; anything else is
// read as text (a hash or a magnet link).
const torrentContentType = "application/x-bittorrent"

// addTorrent is what the page then sends to POST /api/torrents: the
// hashes in hex, as the admin API's AddTorrent reads them.
type addTorrent struct {
	V1   string `json:"v1,omitempty"`
	V2   string `json:"v2,omitempty"`
	Name string `json:"name,omitempty"`
}

// maxPasted bounds pasted text: a magnet link with a long name and many
// trackers fits.
const maxPasted = 8 << 10

// parseAdd reads a .torrent file (contentType application/x-bittorrent)
// or a pasted 40/64-digit hex hash or magnet link. Errors say which and
// why; it never panics, whatever the bytes.
func parseAdd(contentType string, body []byte) (addTorrent, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	var (
		h   metainfo.Hashes
		err error
	)
	if mt == torrentContentType {
		if len(body) > maxUpload {
			return addTorrent{}, fmt.Errorf(".torrent: %d bytes, at most %d", len(body), maxUpload)
		}
		if h, err = metainfo.Parse(body); err != nil {
			return addTorrent{}, fmt.Errorf(".torrent: %w", err)
		}
	} else {
		if len(body) > maxPasted {
			return addTorrent{}, fmt.Errorf("pasted text: %d bytes, at most %d; upload a .torrent file instead", len(body), maxPasted)
		}
		if !utf8.Valid(body) {
			return addTorrent{}, errors.New("pasted text: not UTF-8")
		}
		s := string(bytes.TrimSpace(body))
		switch {
		case s == "":
			return addTorrent{}, errors.New("paste a 40 or 64 digit info hash or a magnet link")
		case strings.HasPrefix(strings.ToLower(s), "magnet:"):
			if h, err = metainfo.ParseMagnet(s); err != nil {
				return addTorrent{}, err // it names the magnet link
			}
		case len(s) == 40 || len(s) == 64:
			if h, err = metainfo.ParseHash(strings.ToLower(s)); err != nil {
				return addTorrent{}, fmt.Errorf("info hash: %w", err)
			}
		default:
			return addTorrent{}, fmt.Errorf("%d characters: neither a 40 or 64 digit info hash nor a magnet link", utf8.RuneCountInString(s))
		}
	}
	t := addTorrent{Name: h.Name}
	if h.V1 != nil {
		t.V1 = h.V1.String()
	}
	if h.V2 != nil {
		t.V2 = h.V2.String()
	}
	if t.V1 == "" && t.V2 == "" {
		return addTorrent{}, errors.New("no info hash found")
	}
	return t, nil
}
