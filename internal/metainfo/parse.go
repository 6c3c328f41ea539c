package metainfo

import (
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"path"
	"strings"

	"warden/internal/bencode"
	"warden/internal/bittorrent"
)

// Limits on a .torrent warden did not make. A torrent past them is
// refused with an error that names the limit.
const (
	// MaxFiles bounds the files of a torrent, pads included.
	MaxFiles = 1_000_000
	// MaxPieceLength bounds the piece length; verifying holds one piece
	// per thread in memory.
	MaxPieceLength = 128 << 20
	// maxPathDepth bounds the directories in a file's path.
	maxPathDepth = 64
)

// File is one file of a torrent.
type File struct {
	// Path is the file's path below the torrent's directory, one element
	// per component; for a single-file torrent it is the torrent's name.
	Path   []string
	Length int64
	// Pad marks a BEP 47 padding file: zeros that exist only in the v1
	// data, so that the next file starts on a piece boundary.
	Pad bool
	// Attr holds the BEP 47 attributes as written ("x", "p", "h", "l"…).
	Attr string
	// PiecesRoot is the root of the file's BEP 52 merkle tree; zero for an
	// empty file and in a v1 torrent.
	PiecesRoot [32]byte
	// Offset is where the file starts in the torrent's data: the v1 data
	// with its pads, or for a v2 torrent the data as if padded.
	Offset int64
}

// Info is what a torrent's info dictionary says.
type Info struct {
	Name        string
	PieceLength int64
	Private     bool
	Source      string
	// V1 and V2 say which hashes it carries: both for a hybrid.
	V1, V2 bool
	// Single is true for the single-file form (no directory).
	Single bool
	// Pieces holds the v1 piece hashes, 20 bytes each.
	Pieces []byte
	// Files are in data order; in a hybrid or v1 torrent they include the
	// pads the file lists, in a v2 torrent there are none.
	Files []File
}

// TotalLength is the length of the torrent's files, pads excluded.
func (in *Info) TotalLength() int64 {
	var n int64
	for _, f := range in.Files {
		if !f.Pad {
			n += f.Length
		}
	}
	return n
}

// Torrent is a whole .torrent file.
type Torrent struct {
	Info Info
	// PieceLayers maps a pieces root to the hashes of the file's pieces
	// (BEP 52), for every file longer than one piece.
	PieceLayers  map[[32]byte][]byte
	Announce     string
	AnnounceList [][]string
	URLList      []string // web seeds (BEP 19)
	Comment      string
	CreatedBy    string
	CreationDate int64 // Unix seconds; 0 when absent
	Hashes       Hashes

	info []byte // the info dictionary as read or made
}

// Trackers returns the announce tiers: announce-list if present (BEP 12),
// else the one announce URL.
func (t *Torrent) Trackers() [][]string {
	if len(t.AnnounceList) > 0 {
		return t.AnnounceList
	}
	if t.Announce != "" {
		return [][]string{{t.Announce}}
	}
	return nil
}

// torrentHashes is the part of a .torrent file Parse reads.
type torrentHashes struct {
	Info bencode.RawMessage `bencode:"info"`
}

type infoHashes struct {
	Name        string `bencode:"name"`
	Pieces      []byte `bencode:"pieces"`
	MetaVersion int64  `bencode:"meta version"`
}

// Parse reads the info hashes and name from the bytes of a .torrent file.
// Keys out of order are accepted, as some real files have them; the hashes
// are always taken over the info dictionary exactly as written.
func Parse(data []byte) (Hashes, error) {
	dec := bencode.Decoder{AllowUnsortedKeys: true, MaxInputBytes: MaxTorrentBytes}
	var t torrentHashes
	if err := dec.Unmarshal(data, &t); err != nil {
		return Hashes{}, fmt.Errorf("not a .torrent file: %w", err)
	}
	if len(t.Info) == 0 {
		return Hashes{}, errors.New("not a .torrent file: no info dictionary")
	}
	var inf infoHashes
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

// ReadTorrent reads and parses the .torrent file at path with ParseTorrent.
func ReadTorrent(path string) (*Torrent, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTorrent(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

type rawTorrent struct {
	Announce     string             `bencode:"announce"`
	AnnounceList [][]string         `bencode:"announce-list"`
	Comment      string             `bencode:"comment"`
	CreatedBy    string             `bencode:"created by"`
	CreationDate int64              `bencode:"creation date"`
	Info         bencode.RawMessage `bencode:"info"`
	PieceLayers  map[string][]byte  `bencode:"piece layers"`
	URLList      bencode.RawMessage `bencode:"url-list"`
}

type rawInfo struct {
	Name        string             `bencode:"name"`
	PieceLength int64              `bencode:"piece length"`
	Pieces      []byte             `bencode:"pieces"`
	Length      *int64             `bencode:"length"`
	Files       []rawFile          `bencode:"files"`
	MetaVersion int64              `bencode:"meta version"`
	FileTree    bencode.RawMessage `bencode:"file tree"`
	Private     int64              `bencode:"private"`
	Source      string             `bencode:"source"`
}

type rawFile struct {
	Attr   string   `bencode:"attr,omitempty"`
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

// ParseTorrent reads a whole .torrent file and checks that it is
// consistent: names that are safe paths, as many v1 piece hashes as the
// data has pieces, a piece layer for every v2 file longer than a piece
// that hashes to its pieces root, and in a hybrid the same files in v1 and
// v2. It is meant for files from anywhere: input is bounded by
// MaxTorrentBytes, MaxFiles and MaxPieceLength, errors say what is wrong
// and where, and no input makes it panic.
func ParseTorrent(data []byte) (*Torrent, error) {
	dec := bencode.Decoder{AllowUnsortedKeys: true, MaxInputBytes: MaxTorrentBytes}
	var rt rawTorrent
	if err := dec.Unmarshal(data, &rt); err != nil {
		return nil, fmt.Errorf("not a .torrent file: %w", err)
	}
	if len(rt.Info) == 0 {
		return nil, errors.New("not a .torrent file: no info dictionary")
	}
	var ri rawInfo
	if err := dec.Unmarshal(rt.Info, &ri); err != nil {
		return nil, fmt.Errorf("info dictionary: %w", err)
	}
	t := &Torrent{
		Announce:     rt.Announce,
		AnnounceList: rt.AnnounceList,
		Comment:      rt.Comment,
		CreatedBy:    rt.CreatedBy,
		CreationDate: rt.CreationDate,
	}
	var err error
	if t.URLList, err = parseURLList(rt.URLList); err != nil {
		return nil, err
	}
	if err := parseInfo(&t.Info, &ri); err != nil {
		return nil, fmt.Errorf("info dictionary: %w", err)
	}
	if t.Info.V2 {
		if t.PieceLayers, err = checkPieceLayers(&t.Info, rt.PieceLayers); err != nil {
			return nil, err
		}
	}
	t.info = rt.Info
	t.Hashes.Name = t.Info.Name
	if t.Info.V1 {
		v1 := bittorrent.InfoHash(sha1.Sum(rt.Info))
		t.Hashes.V1 = &v1
	}
	if t.Info.V2 {
		v2 := bittorrent.InfoHashV2(sha256.Sum256(rt.Info))
		t.Hashes.V2 = &v2
	}
	return t, nil
}

// parseURLList takes url-list as one URL or a list of them.
func parseURLList(raw bencode.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var one string
	if bencode.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := (&bencode.Decoder{AllowUnsortedKeys: true, MaxInputBytes: MaxTorrentBytes}).Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("url-list: want a URL or a list of URLs: %w", err)
	}
	return list, nil
}

func parseInfo(in *Info, ri *rawInfo) error {
	in.Name = ri.Name
	in.Private = ri.Private == 1
	in.Source = ri.Source
	if err := checkComponent(ri.Name); err != nil {
		return fmt.Errorf("name %q: %w", clip(ri.Name), err)
	}
	if ri.PieceLength <= 0 || ri.PieceLength > MaxPieceLength {
		return fmt.Errorf("piece length %d: want 1 to %d", ri.PieceLength, MaxPieceLength)
	}
	in.PieceLength = ri.PieceLength
	switch ri.MetaVersion {
	case 0, 1:
	case 2:
		in.V2 = true
	default:
		return fmt.Errorf("unknown meta version %d", ri.MetaVersion)
	}
	in.V1 = ri.Pieces != nil || ri.Length != nil || ri.Files != nil
	if !in.V1 && !in.V2 {
		return errors.New("neither v1 pieces nor meta version 2")
	}
	if in.V2 {
		if ri.PieceLength < BlockSize || ri.PieceLength&(ri.PieceLength-1) != 0 {
			return fmt.Errorf("piece length %d: a v2 torrent needs a power of two of at least %d", ri.PieceLength, BlockSize)
		}
		if len(ri.FileTree) == 0 {
			return errors.New("meta version 2 without a file tree")
		}
	}
	var v2Files []File
	if in.V2 {
		files, err := walkFileTree(ri.FileTree, MaxFiles)
		if err != nil {
			return err
		}
		in.Single = len(files) == 1 && len(files[0].Path) == 1 && files[0].Path[0] == ri.Name
		v2Files = withPads(files, in.PieceLength, false)
		if in.Single && files[0].Length == 0 {
			return errors.New("file tree: the single file is empty")
		}
	}
	if in.V1 {
		if err := parseV1Files(in, ri); err != nil {
			return err
		}
		if in.V2 && !sameFiles(in.Files, withPads(v2Files, in.PieceLength, !in.Single)) {
			return errors.New("hybrid torrent: the v1 files and the v2 file tree differ (names, sizes, order or padding)")
		}
		if in.V2 { // the roots are in the tree only
			j := 0
			for i := range in.Files {
				if !in.Files[i].Pad {
					in.Files[i].PiecesRoot = v2Files[j].PiecesRoot
					j++
				}
			}
		}
	} else {
		in.Files = v2Files
	}
	return nil
}

// parseV1Files reads "length" or "files" and checks "pieces" against them.
func parseV1Files(in *Info, ri *rawInfo) error {
	switch {
	case ri.Length != nil && ri.Files != nil:
		return errors.New("both length and files")
	case ri.Length != nil:
		if *ri.Length < 0 {
			return fmt.Errorf("length %d is negative", *ri.Length)
		}
		in.Single = true
		in.Files = []File{{Path: []string{ri.Name}, Length: *ri.Length}}
	case len(ri.Files) > MaxFiles:
		return fmt.Errorf("files: %d files, more than %d", len(ri.Files), MaxFiles)
	case len(ri.Files) > 0:
		in.Single = false
		in.Files = make([]File, len(ri.Files))
		var off int64
		for i, rf := range ri.Files {
			if rf.Length < 0 || rf.Length > math.MaxInt64-off {
				return fmt.Errorf("files[%d]: length %d out of range", i, rf.Length)
			}
			if len(rf.Path) == 0 || len(rf.Path) > maxPathDepth {
				return fmt.Errorf("files[%d]: path has %d components, want 1 to %d", i, len(rf.Path), maxPathDepth)
			}
			for _, c := range rf.Path {
				if err := checkComponent(c); err != nil {
					return fmt.Errorf("files[%d]: path %q: %w", i, clip(strings.Join(rf.Path, "/")), err)
				}
			}
			in.Files[i] = File{Path: rf.Path, Length: rf.Length, Attr: rf.Attr, Pad: strings.Contains(rf.Attr, "p"), Offset: off}
			off += rf.Length
		}
	default:
		return errors.New("neither length nor files")
	}
	if len(ri.Pieces)%20 != 0 {
		return fmt.Errorf("pieces is %d bytes, not a multiple of 20", len(ri.Pieces))
	}
	var total int64
	if len(in.Files) > 0 {
		last := in.Files[len(in.Files)-1]
		total = last.Offset + last.Length
	}
	if total == 0 {
		return errors.New("no data: every file is empty")
	}
	if want := (total + in.PieceLength - 1) / in.PieceLength; int64(len(ri.Pieces)/20) != want {
		return fmt.Errorf("pieces has %d hashes, but %d bytes in pieces of %d make %d", len(ri.Pieces)/20, total, in.PieceLength, want)
	}
	in.Pieces = ri.Pieces
	return nil
}

// sameFiles reports whether the v1 list of a hybrid (with its pads) lays
// out the same files as the v2 tree does once padded.
func sameFiles(v1, v2 []File) bool {
	// A pad at the very end is optional: libtorrent writes one, others not.
	v1, v2 = trimTailPad(v1), trimTailPad(v2)
	i, j := 0, 0
	for i < len(v1) || j < len(v2) {
		// Pads must be where the v2 layout puts them; their names are free.
		if i >= len(v1) || j >= len(v2) {
			return false
		}
		a, b := &v1[i], &v2[j]
		if a.Pad != b.Pad || a.Length != b.Length || a.Offset != b.Offset ||
			!a.Pad && !equalPath(a.Path, b.Path) {
			return false
		}
		i++
		j++
	}
	return true
}

func trimTailPad(fs []File) []File {
	if n := len(fs); n > 0 && fs[n-1].Pad {
		return fs[:n-1]
	}
	return fs
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkPieceLayers keeps the layer of each file longer than a piece, after
// checking that it hashes to the file's pieces root.
func checkPieceLayers(in *Info, raw map[string][]byte) (map[[32]byte][]byte, error) {
	layers := make(map[[32]byte][]byte)
	for _, f := range in.Files {
		if f.Pad || f.Length <= in.PieceLength {
			continue
		}
		layer, ok := raw[string(f.PiecesRoot[:])]
		if !ok {
			return nil, fmt.Errorf("piece layers: none for %s", joinPath(f.Path))
		}
		pieces := (f.Length + in.PieceLength - 1) / in.PieceLength
		if int64(len(layer)) != 32*pieces {
			return nil, fmt.Errorf("piece layers: %s: %d bytes, want %d for %d pieces", joinPath(f.Path), len(layer), 32*pieces, pieces)
		}
		if layerRoot(layer, in.PieceLength) != f.PiecesRoot {
			return nil, fmt.Errorf("piece layers: %s: the layer does not hash to the file's pieces root", joinPath(f.Path))
		}
		layers[f.PiecesRoot] = layer
	}
	return layers, nil
}

// withPads lays files out as BEP 52 does: each non-empty file starts on a
// piece boundary. With pads, a BEP 47 pad entry follows every non-empty
// file that does not end on a boundary, the last one too, as libtorrent
// 2.0 writes them when a torrent has two or more files; without, only the
// offsets are set.
func withPads(files []File, pieceLength int64, pads bool) []File {
	out := make([]File, 0, len(files)*2)
	var off int64
	for _, f := range files {
		f.Offset = off
		out = append(out, f)
		off += f.Length
		if rem := off % pieceLength; f.Length > 0 && rem != 0 {
			n := pieceLength - rem
			if pads {
				out = append(out, padFile(n, off))
			}
			off += n
		}
	}
	return out
}

// padFile is a BEP 47 pad of n bytes at off, named as libtorrent names it.
func padFile(n, off int64) File {
	return File{Path: []string{".pad", fmt.Sprint(n)}, Length: n, Pad: true, Attr: "p", Offset: off}
}

// checkComponent rejects a name that is not one safe path component:
// empty, "." or "..", or holding a slash or NUL, so that a torrent cannot
// name a file outside its directory.
func checkComponent(c string) error {
	switch {
	case c == "":
		return errors.New("empty name")
	case c == "." || c == "..":
		return errors.New("not a file name")
	case strings.ContainsAny(c, "/\x00"):
		return errors.New("holds a slash or NUL")
	}
	return nil
}

func joinPath(p []string) string {
	if len(p) == 0 {
		return "(top)"
	}
	return clip(path.Join(p...))
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
