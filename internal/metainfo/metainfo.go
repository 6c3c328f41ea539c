// Package metainfo reads and creates .torrent files (BEP 3; BEP 52 for v2
// and hybrid torrents, with BEP 47 padding) and magnet links (BEP 9).
//
// Reading: [Parse] takes only the info hashes and name, as the registry
// needs; [ParseTorrent] reads and checks everything (files, piece hashes,
// piece layers, trackers), treating the file as untrusted input. Creating:
// [Create] lists a file or directory and hashes it once for v1 and v2 on
// every core, with a context and a progress callback, so a publisher can
// call it as a library; [Verify] checks data against a torrent. Writing the
// result to disk, registering it and showing progress are the caller's.
package metainfo

import (
	"fmt"
	"io"
	"os"
	"strings"

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

// ReadFile parses the .torrent file at path.
func ReadFile(path string) (Hashes, error) {
	data, err := readBounded(path)
	if err != nil {
		return Hashes{}, err
	}
	h, err := Parse(data)
	if err != nil {
		return Hashes{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// readBounded reads a .torrent file of at most MaxTorrentBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > MaxTorrentBytes {
		return nil, fmt.Errorf("%s: %d bytes is larger than the %d a .torrent may have", path, st.Size(), MaxTorrentBytes)
	}
	// Read one byte past the size, so a file that grew is not cut short.
	data, err := io.ReadAll(io.LimitReader(f, MaxTorrentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxTorrentBytes {
		return nil, fmt.Errorf("%s: larger than the %d bytes a .torrent may have", path, MaxTorrentBytes)
	}
	return data, nil
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
