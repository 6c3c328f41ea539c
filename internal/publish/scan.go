package publish

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// What the content directory holds, as publish reads it:
//
//	DIR/ep.mkv            a file at the top: a torrent, in the feed of everything
//	DIR/SHOW/             a show: its own feed, SHOW.xml
//	DIR/SHOW/ep.mkv       a file of a show: a torrent
//	DIR/SHOW/ep/…         a directory in a show: one torrent of all its files
//
// Hidden names (a leading dot: partial downloads, editors' files) are
// never published, nor served by the web seed; nor is anything deeper
// than that, a symbolic link, or a name the web seed would refuse.

// candidate is a file or an episode directory found in the content
// directory.
type candidate struct {
	path string // as item.Path
	show string
	dir  bool
	sig  signature
	err  error // why it cannot be published as it is; reported once per signature
}

// feedAll is the show key of the feed of everything; a show directory of
// that name would collide with it, and is skipped.
const feedAll = ""

// allName is the file name of the feed of everything, without .xml.
const allName = "all"

// servableName reports whether a file or directory name can be published
// and served: visible, valid UTF-8 without control characters or a
// backslash, and at most 255 bytes.
func servableName(name string) bool {
	if name == "" || name[0] == '.' || len(name) > 255 || !utf8.ValidString(name) || strings.ContainsRune(name, '\\') {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return false
		}
	}
	return true
}

// scanDir lists the candidates of the content directory root, by path.
// A name it will not publish is returned with err set (not for hidden
// names, which are skipped quietly); an error reading root or a show
// directory is returned.
func scanDir(root string) ([]candidate, error) {
	top, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, e := range top {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(root, name)
		if !servableName(name) {
			out = append(out, candidate{path: name, err: errors.New("name the web seed cannot serve (control characters, a backslash, invalid UTF-8 or too long)")})
			continue
		}
		switch t := e.Type(); {
		case t.IsRegular():
			out = append(out, fileCandidate(p, name, feedAll))
		case t.IsDir():
			if name == allName {
				out = append(out, candidate{path: name + "/", err: errors.New(`a show named "all" would share its feed with the feed of everything (feeds/all.xml); rename it`)})
				continue
			}
			shows, err := scanShow(p, name)
			switch {
			case errors.Is(err, fs.ErrNotExist): // removed meanwhile: nothing there
			case err != nil:
				// Not "nothing there": that would revoke the whole show
				// for a passing error.
				return nil, err
			}
			out = append(out, shows...)
		default:
			out = append(out, candidate{path: name, err: fmt.Errorf("not a regular file or directory (%s)", t)})
		}
	}
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

func scanShow(dir, show string) ([]candidate, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		rel := show + "/" + name
		if !servableName(name) {
			out = append(out, candidate{path: rel, show: show, err: errors.New("name the web seed cannot serve")})
			continue
		}
		p := filepath.Join(dir, name)
		switch t := e.Type(); {
		case t.IsRegular():
			out = append(out, fileCandidate(p, rel, show))
		case t.IsDir():
			c := candidate{path: rel + "/", show: show, dir: true}
			c.sig, c.err = dirSignature(p)
			out = append(out, c)
		default:
			out = append(out, candidate{path: rel, show: show, err: fmt.Errorf("not a regular file or directory (%s)", t)})
		}
	}
	return out, nil
}

func fileCandidate(p, rel, show string) candidate {
	c := candidate{path: rel, show: show}
	st, err := os.Lstat(p)
	if err != nil {
		c.err = err
		return c
	}
	if !st.Mode().IsRegular() {
		c.err = errors.New("no longer a regular file")
		return c
	}
	c.sig = fileSignature(st)
	return c
}

func fileSignature(st os.FileInfo) signature {
	ino, ctime := inodeCtime(st)
	return signature{Size: st.Size(), MTime: st.ModTime().UnixNano(), CTime: ctime, Ino: ino}
}

// maxDirFiles bounds the files of an episode directory, as metainfo does
// for a torrent.
const maxDirFiles = 100_000

// dirSignature sums up every file below dir: their count and total size,
// the latest of their times, and a digest of each one's path, size, times
// and inode, so that any change to any file changes it. A hidden name, a
// symbolic link or anything but files and directories below dir is an
// error: the torrent would hold (or, for links, lose) what the web seed
// does not serve.
func dirSignature(dir string) (signature, error) {
	var sig signature
	h := sha256.New()
	var buf [40]byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if !servableName(d.Name()) {
			return fmt.Errorf("%s: a hidden or unservable name; the web seed would not serve it, so the torrent could not finish from it", rel)
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case !t.IsRegular():
			return fmt.Errorf("%s: not a regular file (%s)", rel, t)
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if sig.Files++; sig.Files > maxDirFiles {
			return fmt.Errorf("more than %d files", maxDirFiles)
		}
		fs := fileSignature(st)
		sig.Size += fs.Size
		sig.MTime = max(sig.MTime, fs.MTime)
		sig.CTime = max(sig.CTime, fs.CTime)
		h.Write([]byte(rel))
		binary.LittleEndian.PutUint64(buf[0:], uint64(len(rel)))
		binary.LittleEndian.PutUint64(buf[8:], uint64(fs.Size))
		binary.LittleEndian.PutUint64(buf[16:], uint64(fs.MTime))
		binary.LittleEndian.PutUint64(buf[24:], uint64(fs.CTime))
		binary.LittleEndian.PutUint64(buf[32:], fs.Ino)
		h.Write(buf[:])
		return nil
	})
	if err != nil {
		return sig, err
	}
	if sig.Files == 0 {
		return sig, errors.New("no files")
	}
	// The directory's own times move when a file is added or renamed.
	if st, err := os.Lstat(dir); err == nil {
		ds := fileSignature(st)
		sig.MTime = max(sig.MTime, ds.MTime)
		sig.CTime = max(sig.CTime, ds.CTime)
	}
	sig.Digest = hex.EncodeToString(h.Sum(nil)[:16])
	return sig, nil
}

// diskPath is where an item's file or directory is below root.
func diskPath(root, rel string) string {
	return filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(rel, "/")))
}

// baseName is the last element of an item's path.
func baseName(rel string) string { return path.Base(strings.TrimSuffix(rel, "/")) }
