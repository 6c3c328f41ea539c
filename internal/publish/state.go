package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// state is what publish remembers between runs, in DATA/publish/state.json:
// every item published (or about to be), by its path in the content
// directory, and when each feed last changed.
type state struct {
	Version int `json:"version"`
	// Items are in no particular order on disk; in memory, by path.
	Items []*item `json:"items"`
	// Feeds holds each feed's lastBuildDate, by show ("" for all.xml).
	Feeds map[string]time.Time `json:"feeds"`
}

// stateVersion is the format state.json is written in.
const stateVersion = 1

// item is one published torrent.
type item struct {
	// Path is the file's (or the episode directory's) path below the
	// content directory, slash-separated: "ep.mkv", "show/ep.mkv",
	// "show/ep/".
	Path string `json:"path"`
	Show string `json:"show"`
	// Dir marks an episode directory: a torrent of several files.
	Dir bool      `json:"dir,omitempty"`
	Sig signature `json:"sig"`
	// ID names the .torrent (torrents/ID.torrent) and is the feed's guid:
	// the v1 info hash in hex, or the v2 one for a v2-only torrent.
	ID           string    `json:"id"`
	V1           string    `json:"v1,omitempty"`
	V2           string    `json:"v2,omitempty"`
	Name         string    `json:"name"`
	TorrentBytes int64     `json:"torrent_bytes"`
	ContentBytes int64     `json:"content_bytes"`
	Magnet       string    `json:"magnet"`
	Published    time.Time `json:"published"`
	// Pending marks an item written down before it is registered, so
	// that a crash between the two is finished (or undone) on the next
	// scan rather than leaving a registration nobody knows of.
	Pending bool `json:"pending,omitempty"`
}

// signature is what tells a file (or directory) unchanged without reading
// it: sizes, modification and status-change times, inode numbers, and for
// a directory a digest over all of them with the paths.
type signature struct {
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime_ns"`
	CTime  int64  `json:"ctime_ns"`
	Ino    uint64 `json:"ino,omitempty"`
	Files  int    `json:"files,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// lastChange is the latest of the times in s: the moment the file last
// changed, its contents or its name.
func (s signature) lastChange() time.Time { return time.Unix(0, max(s.MTime, s.CTime)) }

// maxStateBytes bounds state.json: a million items are under 1 GB.
const maxStateBytes = 1 << 30

// errDamaged marks a state file that is not what publish wrote.
var errDamaged = errors.New("publish state is damaged")

// checksumPrefix starts the file's last line, which carries the SHA-256 of
// everything before it, so that a damaged file is refused, never taken
// for a shorter list (which would re-publish and revoke at random).
const checksumPrefix = "sha256 "

// loadState reads path; a missing file is an empty state. A file that does
// not check is an error wrapping errDamaged that says what is wrong, and
// is left as it was.
func loadState(path string) (*state, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &state{Version: stateVersion, Feeds: map[string]time.Time{}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// parseState checks and decodes the bytes of state.json.
func parseState(data []byte) (*state, error) {
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", errDamaged, maxStateBytes)
	}
	body, sum, ok := cutChecksum(data)
	if !ok {
		return nil, fmt.Errorf("%w: no checksum line at the end (cut short?)", errDamaged)
	}
	got := sha256.Sum256(body)
	if hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%w: checksum does not match the contents", errDamaged)
	}
	var s state
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", errDamaged, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%w: format version %d, this warden reads %d", errDamaged, s.Version, stateVersion)
	}
	if s.Feeds == nil {
		s.Feeds = map[string]time.Time{}
	}
	seen := make(map[string]bool, len(s.Items))
	for i, it := range s.Items {
		if it == nil {
			return nil, fmt.Errorf("%w: item %d is null", errDamaged, i)
		}
		if err := it.check(); err != nil {
			return nil, fmt.Errorf("%w: item %d: %v", errDamaged, i, err)
		}
		if seen[it.Path] {
			return nil, fmt.Errorf("%w: item %d: path %q listed twice", errDamaged, i, it.Path)
		}
		seen[it.Path] = true
	}
	return &s, nil
}

// check is what an item must be for the rest of the package to use it
// safely: a path below the content directory, a hex ID usable as a file
// name, and a show that is the path's first directory.
func (it *item) check() error {
	rel := strings.TrimSuffix(it.Path, "/")
	if !validRel(rel) {
		return fmt.Errorf("path %q", it.Path)
	}
	if it.Dir != strings.HasSuffix(it.Path, "/") {
		return fmt.Errorf("path %q: dir is %t", it.Path, it.Dir)
	}
	show, _, nested := strings.Cut(rel, "/")
	if !nested {
		show = ""
	}
	if it.Show != show || strings.Count(rel, "/") > 1 || it.Dir && show == "" {
		return fmt.Errorf("path %q: not where an item can be (show %q)", it.Path, it.Show)
	}
	if !isHexID(it.ID) || it.V1 == "" && it.V2 == "" {
		return fmt.Errorf("path %q: id %q", it.Path, it.ID)
	}
	if it.TorrentBytes < 0 || it.ContentBytes < 0 {
		return fmt.Errorf("path %q: negative size", it.Path)
	}
	return nil
}

func isHexID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validRel reports whether rel is a clean relative path of visible names.
func validRel(rel string) bool {
	if rel == "" || rel == "." || strings.HasPrefix(rel, "/") {
		return false
	}
	for elem := range strings.SplitSeq(rel, "/") {
		if !servableName(elem) {
			return false
		}
	}
	return true
}

func cutChecksum(data []byte) (body []byte, sum string, ok bool) {
	data, ok = bytes.CutSuffix(data, []byte("\n"))
	if !ok {
		return nil, "", false
	}
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return nil, "", false
	}
	line := string(data[i+1:])
	sum, ok = strings.CutPrefix(line, checksumPrefix)
	return data[:i+1], sum, ok
}

// marshal writes s as state.json: indented JSON (items by path), then the
// checksum line.
func (s *state) marshal() ([]byte, error) {
	out := *s
	out.Items = slices.Clone(s.Items)
	slices.SortFunc(out.Items, func(a, b *item) int { return strings.Compare(a.Path, b.Path) })
	body, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	return append(body, checksumPrefix+hex.EncodeToString(sum[:])+"\n"...), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
