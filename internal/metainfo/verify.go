package metainfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// VerifyResult says which pieces and files of a torrent the data matches.
type VerifyResult struct {
	Pieces    int          `json:"pieces"`     // pieces in the torrent's data (pads included)
	BadPieces []int        `json:"bad_pieces"` // indices of pieces that did not match or could not be read
	Files     []FileResult `json:"files"`
}

// OK reports whether every piece and file checked out.
func (r *VerifyResult) OK() bool {
	if len(r.BadPieces) > 0 {
		return false
	}
	for _, f := range r.Files {
		if !f.OK {
			return false
		}
	}
	return true
}

// FileResult is what Verify found for one file (pads are not listed).
type FileResult struct {
	Path      []string `json:"path"`
	Length    int64    `json:"length"`
	OK        bool     `json:"ok"`
	BadPieces int      `json:"bad_pieces"`        // pieces holding part of the file that are bad
	Problem   string   `json:"problem,omitempty"` // why it is not OK: missing, wrong size, unreadable, bad pieces
}

// Verify hashes the data at path (the file of a single-file torrent, or
// the directory holding a multi-file torrent's files) and compares it with
// t's v1 piece hashes and v2 piece layers and roots, all that t carries. A
// missing, short or unreadable file makes its pieces bad; it is not an
// error. Verify returns an error only when ctx is done.
func Verify(ctx context.Context, t *Torrent, path string, threads int, progress Progress) (*VerifyResult, error) {
	in := &t.Info
	files := in.Files
	if !in.V1 {
		files = withPads(files, in.PieceLength, !in.Single)
	}
	disk := make([]string, len(files))
	res := &VerifyResult{}
	problems := make([]string, len(files))
	for i, f := range files {
		if f.Pad {
			continue
		}
		disk[i] = path
		if !in.Single {
			disk[i] = filepath.Join(append([]string{path}, f.Path...)...)
		}
		switch st, err := os.Stat(disk[i]); {
		case errors.Is(err, fs.ErrNotExist):
			problems[i] = "missing"
		case err != nil:
			problems[i] = err.Error()
		case !st.Mode().IsRegular():
			problems[i] = "not a regular file"
		case st.Size() != f.Length:
			problems[i] = fmt.Sprintf("%d bytes, want %d", st.Size(), f.Length)
		}
	}
	job := hashJob{files: files, disk: disk, pieceLen: in.PieceLength, v1: in.V1, v2: in.V2,
		threads: threads, progress: progress, tolerant: true}
	h, err := job.run(ctx)
	if err != nil {
		return nil, err
	}
	res.Pieces = job.numPieces()
	good := h.readOK
	if in.V1 {
		for p := range good {
			if !bytes.Equal(h.v1[20*p:20*p+20], in.Pieces[20*p:20*p+20]) {
				good[p] = false
			}
		}
	}
	if in.V2 {
		for _, f := range files {
			if f.Pad || f.Length == 0 {
				continue
			}
			first := int(f.Offset / in.PieceLength)
			count := int((f.Length + in.PieceLength - 1) / in.PieceLength)
			var want []byte
			if count == 1 {
				want = f.PiecesRoot[:]
			} else {
				want = t.PieceLayers[f.PiecesRoot]
			}
			for k := range count {
				p := first + k
				if !bytes.Equal(h.v2[32*p:32*p+32], want[32*k:32*k+32]) {
					good[p] = false
				}
			}
		}
	}
	for p, ok := range good {
		if !ok {
			res.BadPieces = append(res.BadPieces, p)
		}
	}
	for i, f := range files {
		if f.Pad {
			continue
		}
		fr := FileResult{Path: f.Path, Length: f.Length, Problem: problems[i]}
		if f.Length > 0 {
			first := f.Offset / in.PieceLength
			last := (f.Offset + f.Length - 1) / in.PieceLength
			for p := first; p <= last; p++ {
				if !good[p] {
					fr.BadPieces++
				}
			}
		}
		if fr.Problem == "" && h.readErr[i] != nil {
			fr.Problem = h.readErr[i].Error()
		}
		if fr.Problem == "" && fr.BadPieces > 0 {
			fr.Problem = fmt.Sprintf("%d bad pieces", fr.BadPieces)
		}
		fr.OK = fr.Problem == ""
		res.Files = append(res.Files, fr)
	}
	return res, nil
}
