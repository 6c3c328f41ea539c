package metainfo

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
)

// BlockSize is the size of a leaf of a BEP 52 merkle tree: each file is
// hashed in 16 KiB blocks, and a piece is a whole number of them.
const BlockSize = 16 << 10

// hash32 is one SHA-256 node of a merkle tree.
type hash32 = [32]byte

// nextPow2 returns the smallest power of two that is at least n (n ≥ 1).
func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// padHash returns the root of a subtree of width all-zero leaves (width a
// power of two), which BEP 52 uses for the part of a tree past a file's end.
func padHash(width int) hash32 {
	var h hash32
	var pair [64]byte
	for ; width > 1; width /= 2 {
		copy(pair[:32], h[:])
		copy(pair[32:], h[:])
		h = sha256.Sum256(pair[:])
	}
	return h
}

// merkleRoot reduces the n hashes at the start of nodes (32 bytes each) to
// the root of a tree of width leaves (a power of two ≥ n), the leaves past n
// being pad, a node of the level nodes is at. It overwrites nodes and does
// not allocate.
func merkleRoot(nodes []byte, n, width int, pad hash32) hash32 {
	if n == 0 {
		return padHash(width) // not used for files, which always have data
	}
	var pair [64]byte
	for ; width > 1; width /= 2 {
		half := (n + 1) / 2
		for i := range half {
			copy(pair[:32], nodes[64*i:64*i+32])
			if 2*i+1 < n {
				copy(pair[32:], nodes[64*i+32:64*i+64])
			} else {
				copy(pair[32:], pad[:])
			}
			h := sha256.Sum256(pair[:])
			copy(nodes[32*i:], h[:])
		}
		copy(pair[:32], pad[:])
		copy(pair[32:], pad[:])
		pad = sha256.Sum256(pair[:])
		n = half
	}
	return hash32(nodes[:32])
}

// layerRoot is the pieces root of a file from its piece layer (the hashes
// of its pieces, each a subtree of pieceLength/BlockSize leaves). It works
// on a copy of layer.
func layerRoot(layer []byte, pieceLength int64) hash32 {
	n := len(layer) / 32
	nodes := make([]byte, len(layer))
	copy(nodes, layer)
	return merkleRoot(nodes, n, nextPow2(n), padHash(int(pieceLength/BlockSize)))
}

// fileTree builds the BEP 52 "file tree" of files (no pads) as nested maps,
// which bencode writes with sorted keys. For a single file the tree's one
// key is the torrent's name.
func fileTree(files []File) map[string]any {
	root := map[string]any{}
	for _, f := range files {
		if f.Pad {
			continue
		}
		dir := root
		for _, c := range f.Path[:len(f.Path)-1] {
			sub, ok := dir[c].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dir[c] = sub
			}
			dir = sub
		}
		leaf := map[string]any{"length": f.Length}
		if f.Length > 0 {
			leaf["pieces root"] = f.PiecesRoot[:]
		}
		if f.Attr != "" {
			leaf["attr"] = f.Attr
		}
		dir[f.Path[len(f.Path)-1]] = map[string]any{"": leaf}
	}
	return root
}

// treeWalker reads a "file tree" dictionary that bencode.Decoder has
// already checked to be well-formed, without building a map per
// directory: a tree of a few bytes per node could otherwise cost a hundred
// times its size in memory. It trusts the syntax and checks the meaning.
type treeWalker struct {
	data     []byte
	pos      int
	files    []File
	maxFiles int
}

var errTreeSyntax = errors.New("file tree: malformed")

// walkFileTree lists the files of a v2 file tree in the order written,
// with their path components (not including the torrent's name for a
// multi-file torrent), length, attributes and pieces root.
func walkFileTree(data []byte, maxFiles int) ([]File, error) {
	w := treeWalker{data: data, maxFiles: maxFiles}
	if err := w.dir(nil, 0); err != nil {
		return nil, err
	}
	if w.pos != len(data) {
		return nil, errTreeSyntax
	}
	if len(w.files) == 0 {
		return nil, errors.New("file tree: no files")
	}
	return w.files, nil
}

func (w *treeWalker) peek() byte {
	if w.pos >= len(w.data) {
		return 0
	}
	return w.data[w.pos]
}

// str reads a byte string.
func (w *treeWalker) str() ([]byte, error) {
	i := w.pos
	n := 0
	for i < len(w.data) && '0' <= w.data[i] && w.data[i] <= '9' {
		n = n*10 + int(w.data[i]-'0')
		if n > len(w.data) {
			return nil, errTreeSyntax
		}
		i++
	}
	if i == w.pos || i >= len(w.data) || w.data[i] != ':' || i+1+n > len(w.data) {
		return nil, errTreeSyntax
	}
	w.pos = i + 1 + n
	return w.data[i+1 : i+1+n], nil
}

// int reads an integer.
func (w *treeWalker) int() (int64, error) {
	if w.peek() != 'i' {
		return 0, errTreeSyntax
	}
	end := w.pos + 1
	for end < len(w.data) && w.data[end] != 'e' {
		end++
	}
	if end >= len(w.data) {
		return 0, errTreeSyntax
	}
	v, err := strconv.ParseInt(string(w.data[w.pos+1:end]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("file tree: length: %w", err)
	}
	w.pos = end + 1
	return v, nil
}

// skip passes over one value of any type, iteratively so that nesting
// cannot grow the stack.
func (w *treeWalker) skip() error {
	depth := 0
	for {
		switch c := w.peek(); {
		case c == 'i':
			if _, err := w.int(); err != nil {
				return err
			}
		case c == 'l' || c == 'd':
			w.pos++
			depth++
			continue
		case c == 'e':
			if depth == 0 {
				return errTreeSyntax
			}
			w.pos++
			depth--
		case '0' <= c && c <= '9':
			if _, err := w.str(); err != nil {
				return err
			}
		default:
			return errTreeSyntax
		}
		if depth == 0 {
			return nil
		}
	}
}

// dir reads a directory dictionary at path; depth is bounded by the
// decoder that checked the input, and again here.
func (w *treeWalker) dir(path []string, depth int) error {
	if depth > maxPathDepth {
		return fmt.Errorf("file tree: deeper than %d directories", maxPathDepth)
	}
	if w.peek() != 'd' {
		return fmt.Errorf("file tree: %s: not a dictionary", joinPath(path))
	}
	w.pos++
	keys, isFile := 0, false
	for w.peek() != 'e' {
		key, err := w.str()
		if err != nil {
			return err
		}
		keys++
		if len(key) == 0 {
			isFile = true
			if len(path) == 0 {
				return errors.New("file tree: a file with an empty name at the top")
			}
			if err := w.file(path); err != nil {
				return err
			}
			continue
		}
		name := string(key)
		if err := checkComponent(name); err != nil {
			return fmt.Errorf("file tree: %s: %w", joinPath(append(path, name)), err)
		}
		if err := w.dir(append(path[:len(path):len(path)], name), depth+1); err != nil {
			return err
		}
	}
	w.pos++
	switch {
	case keys == 0:
		return fmt.Errorf("file tree: %s: empty directory", joinPath(path))
	case isFile && keys > 1:
		return fmt.Errorf("file tree: %s: both a file and a directory", joinPath(path))
	}
	return nil
}

// file reads the dictionary under a file's "" key.
func (w *treeWalker) file(path []string) error {
	if len(w.files) >= w.maxFiles {
		return fmt.Errorf("file tree: more than %d files", w.maxFiles)
	}
	if w.peek() != 'd' {
		return fmt.Errorf("file tree: %s: file entry is not a dictionary", joinPath(path))
	}
	w.pos++
	f := File{Path: path, Length: -1}
	hasRoot := false
	for w.peek() != 'e' {
		key, err := w.str()
		if err != nil {
			return err
		}
		switch string(key) {
		case "length":
			if f.Length, err = w.int(); err != nil {
				return err
			}
			if f.Length < 0 {
				return fmt.Errorf("file tree: %s: negative length", joinPath(path))
			}
		case "pieces root":
			root, err := w.str()
			if err != nil {
				return fmt.Errorf("file tree: %s: pieces root is not a string", joinPath(path))
			}
			if len(root) != 32 {
				return fmt.Errorf("file tree: %s: pieces root is %d bytes, want 32", joinPath(path), len(root))
			}
			copy(f.PiecesRoot[:], root)
			hasRoot = true
		case "attr":
			a, err := w.str()
			if err != nil {
				return fmt.Errorf("file tree: %s: attr is not a string", joinPath(path))
			}
			f.Attr = string(a)
		default:
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	w.pos++
	switch {
	case f.Length < 0:
		return fmt.Errorf("file tree: %s: no length", joinPath(path))
	case f.Length > 0 && !hasRoot:
		return fmt.Errorf("file tree: %s: no pieces root", joinPath(path))
	}
	w.files = append(w.files, f)
	return nil
}
