// Package metainfo reads what warden needs from .torrent files (BEP 3, and
// BEP 52 for v2 and hybrid torrents) and magnet links (BEP 9): the info
// hashes that identify a torrent to trackers, and its name.
package metainfo

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"warden/internal/bencode"
	"warden/internal/bittorrent"
)

// MaxTorrentBytes bounds a .torrent file read from disk or the network.
const MaxTorrentBytes = 64 << 20

// Hashes names a torrent: a v1 hash (SHA-1 of the info dictionary), a v2
// hash (SHA-256 of it, BEP 52), or both for a hybrid torrent. A nil hash is
// absent. Trackers see the v2 hash truncated: h.V2.Truncate().
type Hashes struct {
	V1 *bittorrent.InfoHash
	V2 *bittorrent.InfoHashV2
	// Name is the torrent's name ("name" in the info dictionary, or the
	// magnet link's dn), possibly empty.
	Name string
}

// torrent is the part of a .torrent file warden reads.
type torrent struct {
	Info bencode.RawMessage `bencode:"info"`
}

type info struct {
	Name        string `bencode:"name"`
	Pieces      []byte `bencode:"pieces"`
	MetaVersion int64  `bencode:"meta version"`
}

// ReadFile parses the .torrent file at path.
func ReadFile(path string) (Hashes, error) {
	f, err := os.Open(path)
	if err != nil {
		return Hashes{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Hashes{}, err
	}
	if st.Size() > MaxTorrentBytes {
		return Hashes{}, fmt.Errorf("%s: %d bytes is larger than the %d a .torrent may have", path, st.Size(), MaxTorrentBytes)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return Hashes{}, fmt.Errorf("read %s: %w", path, err)
	}
	h, err := Parse(data)
	if err != nil {
		return Hashes{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// Parse reads the info hashes and name from the bytes of a .torrent file.
// Keys out of order are accepted, as some real files have them; the hashes
// are always taken over the info dictionary exactly as written.
func Parse(data []byte) (Hashes, error) {
	dec := bencode.Decoder{AllowUnsortedKeys: true, MaxInputBytes: MaxTorrentBytes}
	var t torrent
	if err := dec.Unmarshal(data, &t); err != nil {
		return Hashes{}, fmt.Errorf("not a .torrent file: %w", err)
	}
	if len(t.Info) == 0 {
		return Hashes{}, errors.New("not a .torrent file: no info dictionary")
	}
	var inf info
	if err := dec.Unmarshal(t.Info, &inf); err != nil {
		return Hashes{}, fmt.Errorf("info dictionary: %w", err)
	}
	h := Hashes{Name: inf.Name}
	if len(inf.Pieces) > 0 {
		if len(inf.Pieces)%20 != 0 {
			return Hashes{}, fmt.Errorf("info dictionary: pieces is %d bytes, not a multiple of 20", len(inf.Pieces))
		}
		v1 := bittorrent.InfoHash(sha1.Sum(t.Info))
		h.V1 = &v1
	}
	switch inf.MetaVersion {
	case 0, 1:
	case 2:
		v2 := bittorrent.InfoHashV2(sha256.Sum256(t.Info))
		h.V2 = &v2
	default:
		return Hashes{}, fmt.Errorf("info dictionary: unknown meta version %d", inf.MetaVersion)
	}
	if h.V1 == nil && h.V2 == nil {
		return Hashes{}, errors.New("info dictionary has neither v1 pieces nor meta version 2")
	}
	return h, nil
}

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

// ParseHash reads a bare info hash: 40 hex digits (v1) or 64 (a full v2
// hash, kept whole). Errors wrap bittorrent.ErrBadInfoHash.
func ParseHash(s string) (Hashes, error) {
	if len(s) == 64 {
		v2, err := bittorrent.ParseInfoHashV2(s)
		if err != nil {
			return Hashes{}, fmt.Errorf("%q: %w", s, bittorrent.ErrBadInfoHash)
		}
		return Hashes{V2: &v2}, nil
	}
	ih, err := bittorrent.ParseInfoHash(s) // 40 digits, since 64 are taken above
	if err != nil {
		return Hashes{}, err
	}
	return Hashes{V1: &ih}, nil
}

// ParseArg reads what a user may name a torrent by on the command line: a
// magnet link, a 40 or 64 digit hex hash, or a path to a .torrent file.
func ParseArg(arg string) (Hashes, error) {
	switch {
	case strings.HasPrefix(arg, "magnet:"):
		return ParseMagnet(arg)
	case (len(arg) == 40 || len(arg) == 64) && isHex(arg):
		return ParseHash(arg)
	}
	if _, err := os.Stat(arg); err != nil {
		return Hashes{}, fmt.Errorf("%q is not a magnet link, a 40/64-digit hex info hash, or a readable .torrent file: %w", arg, err)
	}
	return ReadFile(arg)
}

func isHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
