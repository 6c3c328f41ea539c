package metainfo

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"warden/internal/bencode"
	"warden/internal/bittorrent"
)

// Version is the kind of torrent Create makes.
type Version int

const (
	// Hybrid carries v1 and v2 hashes (BEP 52 with BEP 47 pads), so v1-only
	// and v2 clients share one swarm. It is the default.
	Hybrid Version = iota
	// V1 is a BEP 3 torrent.
	V1
	// V2 is a BEP 52 torrent without v1 hashes.
	V2
)

func (v Version) String() string {
	switch v {
	case V1:
		return "1"
	case V2:
		return "2"
	}
	return "hybrid"
}

// ParseVersion reads "1", "2" or "hybrid".
func ParseVersion(s string) (Version, error) {
	switch s {
	case "1":
		return V1, nil
	case "2":
		return V2, nil
	case "hybrid":
		return Hybrid, nil
	}
	return 0, fmt.Errorf("meta version %q: want 1, 2 or hybrid", s)
}

// Piece lengths Create accepts and chooses.
const (
	MinPieceLength = BlockSize // BEP 52's least; a power of two
	// MaxCreatePieceLength is the largest piece Create makes; clients
	// refuse or struggle with larger ones.
	MaxCreatePieceLength = 64 << 20
	// autoMaxPieceLength and autoPieces are the automatic rule: see
	// AutoPieceLength.
	autoMaxPieceLength = 16 << 20
	autoPieces         = 2048
	// MaxHashBytes bounds the piece hashes (v1 pieces and v2 piece layers)
	// Create writes, so the .torrent stays under the 10 MB libtorrent
	// loads by default.
	MaxHashBytes = 8 << 20
)

// AutoPieceLength is the piece length Create picks for total bytes: the
// smallest power of two from 16 KiB to 16 MiB that cuts the data into at
// most 2048 pieces (16 MiB beyond 32 GiB). A torrent then carries at most
// 2048 × 52 bytes of hashes up to 32 GiB, and about 3.3 MB at 1 TiB.
func AutoPieceLength(total int64) int64 {
	l := int64(MinPieceLength)
	for l < autoMaxPieceLength && (total+l-1)/l > autoPieces {
		l *= 2
	}
	return l
}

// CreateOptions say what Create makes. The zero value makes a hybrid
// torrent with an automatic piece length and no trackers.
type CreateOptions struct {
	Version Version
	// PieceLength is a power of two from MinPieceLength to
	// MaxCreatePieceLength; 0 picks AutoPieceLength.
	PieceLength int64
	// Name is the torrent's name; "" takes the base name of the path.
	Name string
	// Trackers are announce URLs in tiers (BEP 12): each tier is tried in
	// order, the URLs of a tier in any order.
	Trackers [][]string
	// WebSeeds are BEP 19 URLs (url-list).
	WebSeeds []string
	// Private sets BEP 27's private flag.
	Private bool
	// Source is written into the info dictionary, so it changes the info
	// hashes (used by private trackers to tell cross-seeds apart).
	Source       string
	Comment      string
	CreatedBy    string
	CreationDate int64 // Unix seconds; 0 writes none
	// Attributes writes BEP 47 "x" for executable files. Off by default,
	// so a file's mode does not change the info hash.
	Attributes bool
	// Threads is how many goroutines hash; 0 means GOMAXPROCS.
	Threads int
	// Progress, if set, is told how far hashing has got.
	Progress Progress
}

// Create lists the file or directory at path and hashes it into a
// torrent. Files are taken in byte order of their paths (per component for
// v2 and hybrid, as the file tree sorts them; whole paths for v1, as
// mktorrent does), so the result depends only on the data and opts, not
// on thread count or listing order. The data is read once for v1 and v2.
//
// Symbolic links, special files and unreadable files are errors, as is a
// file that changes while it is hashed (the error wraps ErrChanged).
// Create stops early when ctx is done and returns ctx.Err().
func Create(ctx context.Context, path string, opts CreateOptions) (*Torrent, error) {
	files, disk, listed, single, err := listFiles(path, opts)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += f.Length
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: nothing to share: no file has data", path)
	}
	pl := opts.PieceLength
	if pl == 0 {
		pl = AutoPieceLength(total)
	}
	if pl < MinPieceLength || pl > MaxCreatePieceLength || pl&(pl-1) != 0 {
		return nil, fmt.Errorf("piece length %d: want a power of two from %d to %d", pl, MinPieceLength, MaxCreatePieceLength)
	}
	v1, v2 := opts.Version != V2, opts.Version != V1

	// The data as hashed: aligned with pads whenever v2 is involved.
	job := hashJob{pieceLen: pl, v1: v1, v2: v2, threads: opts.Threads, progress: opts.Progress}
	if v2 {
		job.files = withPads(files, pl, len(files) > 1) // libtorrent pads only between two or more files
		job.disk = make([]string, len(job.files))
		job.listed = make([]os.FileInfo, len(job.files))
		for i, j := 0, 0; i < len(job.files); i++ {
			if !job.files[i].Pad {
				job.disk[i], job.listed[i] = disk[j], listed[j]
				j++
			}
		}
	} else {
		job.files, job.disk, job.listed = files, disk, listed
		var off int64
		for i := range job.files {
			job.files[i].Offset = off
			off += job.files[i].Length
		}
	}
	n := job.numPieces()
	hashBytes := 0
	if v1 {
		hashBytes += 20 * n
	}
	if v2 {
		hashBytes += 32 * n
	}
	if hashBytes > MaxHashBytes {
		return nil, fmt.Errorf("piece length %d: %d pieces need %d MiB of hashes, more than the %d MiB a .torrent should carry; use a larger piece length",
			pl, n, hashBytes>>20, MaxHashBytes>>20)
	}

	if testHookListed != nil {
		testHookListed()
	}
	res, err := job.run(ctx)
	if err != nil {
		return nil, err
	}
	if testHookHashed != nil {
		testHookHashed()
	}
	for i, p := range job.disk {
		if p == "" {
			continue
		}
		st, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", p, ErrChanged, err)
		}
		if was := job.listed[i]; !os.SameFile(st, was) || st.Size() != was.Size() || !st.ModTime().Equal(was.ModTime()) {
			return nil, fmt.Errorf("%s: %w (size or modification time differs after hashing)", p, ErrChanged)
		}
	}

	name := cmp.Or(opts.Name, filepath.Base(filepath.Clean(path)))
	if err := checkComponent(name); err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	t := &Torrent{
		Info: Info{Name: name, PieceLength: pl, Private: opts.Private, Source: opts.Source,
			V1: v1, V2: v2, Single: single, Pieces: res.v1},
		CreatedBy:    opts.CreatedBy,
		CreationDate: opts.CreationDate,
		Comment:      opts.Comment,
	}
	t.URLList = opts.WebSeeds
	t.setTrackers(opts.Trackers)
	if v2 {
		t.PieceLayers = make(map[[32]byte][]byte)
		for i := range job.files {
			f := &job.files[i]
			if f.Pad || f.Length == 0 {
				continue
			}
			first := f.Offset / pl
			count := (f.Length + pl - 1) / pl
			layer := res.v2[32*first : 32*(first+count)]
			if count == 1 {
				f.PiecesRoot = hash32(layer)
				continue
			}
			f.PiecesRoot = layerRoot(layer, pl)
			t.PieceLayers[f.PiecesRoot] = slices.Clone(layer)
		}
	}
	if single {
		job.files[0].Path = []string{name}
	}
	t.Info.Files = job.files
	if opts.Version == V2 {
		t.Info.Files = slices.DeleteFunc(t.Info.Files, func(f File) bool { return f.Pad })
	}
	if t.info, err = encodeInfo(&t.Info); err != nil {
		return nil, err
	}
	t.Hashes = hashesOf(t.info, v1, v2, name)
	return t, nil
}

// Test hooks: called after the files are listed and after they are hashed,
// so a test can change a file at those moments.
var testHookListed, testHookHashed func()

// setTrackers sets announce to the first URL and announce-list to the
// tiers when there is more than one URL, as mktorrent does.
func (t *Torrent) setTrackers(tiers [][]string) {
	var all int
	for _, tier := range tiers {
		all += len(tier)
	}
	if all == 0 {
		return
	}
	for _, tier := range tiers {
		if len(tier) > 0 {
			t.Announce = tier[0]
			break
		}
	}
	if all > 1 {
		t.AnnounceList = slices.DeleteFunc(slices.Clone(tiers), func(tier []string) bool { return len(tier) == 0 })
	}
}

func hashesOf(info []byte, v1, v2 bool, name string) Hashes {
	h := Hashes{Name: name}
	if v1 {
		ih := bittorrent.InfoHash(sha1.Sum(info))
		h.V1 = &ih
	}
	if v2 {
		ih := bittorrent.InfoHashV2(sha256.Sum256(info))
		h.V2 = &ih
	}
	return h
}

// infoDict is the info dictionary as Create writes it; bencode sorts the
// keys.
type infoDict struct {
	FileTree    map[string]any `bencode:"file tree,omitempty"`
	Files       []rawFile      `bencode:"files,omitempty"`
	Length      *int64         `bencode:"length,omitempty"`
	MetaVersion int            `bencode:"meta version,omitempty"`
	Name        string         `bencode:"name"`
	PieceLength int64          `bencode:"piece length"`
	Pieces      []byte         `bencode:"pieces,omitempty"`
	Private     int            `bencode:"private,omitempty"`
	Source      string         `bencode:"source,omitempty"`
}

func encodeInfo(in *Info) ([]byte, error) {
	d := infoDict{Name: in.Name, PieceLength: in.PieceLength, Source: in.Source}
	if in.Private {
		d.Private = 1
	}
	if in.V1 {
		d.Pieces = in.Pieces
		if in.Single {
			n := in.Files[0].Length
			d.Length = &n
		} else {
			d.Files = make([]rawFile, len(in.Files))
			for i, f := range in.Files {
				d.Files[i] = rawFile{Attr: f.Attr, Length: f.Length, Path: f.Path}
			}
		}
	}
	if in.V2 {
		d.MetaVersion = 2
		d.FileTree = fileTree(in.Files)
	}
	b, err := bencode.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode info dictionary: %w", err)
	}
	return b, nil
}

// listFiles lists the regular files at root in the order the torrent
// keeps them, with their paths on disk and what Lstat said of them.
func listFiles(root string, opts CreateOptions) (files []File, disk []string, listed []os.FileInfo, single bool, err error) {
	st, err := os.Lstat(root)
	if err != nil {
		return nil, nil, nil, false, err
	}
	add := func(p string, rel []string, fi os.FileInfo) error {
		if err := checkReadable(p, fi); err != nil {
			return err
		}
		if len(files) >= MaxFiles {
			return fmt.Errorf("%s: more than %d files", root, MaxFiles)
		}
		f := File{Path: rel, Length: fi.Size()}
		if opts.Attributes && fi.Mode()&0o111 != 0 {
			f.Attr = "x"
		}
		files = append(files, f)
		disk = append(disk, p)
		listed = append(listed, fi)
		return nil
	}
	if !st.IsDir() {
		return files, disk, listed, true, add(root, []string{filepath.Base(root)}, st)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && len(strings.Split(p[len(root):], string(filepath.Separator))) > maxPathDepth {
				return fmt.Errorf("%s: deeper than %d directories", p, maxPathDepth)
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return add(p, strings.Split(filepath.ToSlash(rel), "/"), fi)
	})
	if err != nil {
		return nil, nil, nil, false, err
	}
	idx := make([]int, len(files))
	for i := range idx {
		idx[i] = i
	}
	if opts.Version == V1 {
		slices.SortFunc(idx, func(a, b int) int {
			return strings.Compare(strings.Join(files[a].Path, "/"), strings.Join(files[b].Path, "/"))
		})
	} else {
		slices.SortFunc(idx, func(a, b int) int { return slices.Compare(files[a].Path, files[b].Path) })
	}
	sf, sd, sl := make([]File, len(idx)), make([]string, len(idx)), make([]os.FileInfo, len(idx))
	for i, j := range idx {
		sf[i], sd[i], sl[i] = files[j], disk[j], listed[j]
	}
	return sf, sd, sl, false, nil
}

// checkReadable refuses what Create cannot put in a torrent faithfully.
func checkReadable(p string, fi os.FileInfo) error {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return fmt.Errorf("%s: is a symbolic link; warden does not follow links (copy the file, or give the target)", p)
	case !m.IsRegular():
		return fmt.Errorf("%s: not a regular file (%s)", p, m.Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("%s: unreadable: %w", p, errors.Unwrap(err))
	}
	return f.Close()
}

// Marshal returns the .torrent file: the info dictionary as it was read
// or made (so the hashes hold), and the fields around it.
func (t *Torrent) Marshal() ([]byte, error) {
	d := struct {
		Announce     string             `bencode:"announce,omitempty"`
		AnnounceList [][]string         `bencode:"announce-list,omitempty"`
		Comment      string             `bencode:"comment,omitempty"`
		CreatedBy    string             `bencode:"created by,omitempty"`
		CreationDate int64              `bencode:"creation date,omitempty"`
		Info         bencode.RawMessage `bencode:"info"`
		PieceLayers  map[string][]byte  `bencode:"piece layers,omitempty"`
		URLList      []string           `bencode:"url-list,omitempty"`
	}{
		Announce: t.Announce, AnnounceList: t.AnnounceList, Comment: t.Comment, CreatedBy: t.CreatedBy,
		CreationDate: t.CreationDate, Info: t.info, URLList: t.URLList,
	}
	if len(t.PieceLayers) > 0 {
		d.PieceLayers = make(map[string][]byte, len(t.PieceLayers))
		for k, v := range t.PieceLayers {
			d.PieceLayers[string(k[:])] = v
		}
	}
	b, err := bencode.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode torrent: %w", err)
	}
	return b, nil
}
