package webseed

import (
	"errors"
	"io/fs"
	"strings"
)

// Limits on a requested path, far above any name a publisher gives.
const (
	maxPathBytes = 4096
	maxNameBytes = 255
	// maxPad is the longest pad answered: a pad is shorter than a piece,
	// and no torrent warden makes has pieces over 64 MiB.
	maxPad = 64 << 20
)

// errRefused is a path that names nothing the listener serves: outside its
// directory, hidden, or malformed. Every such request is answered 404, as
// if the file did not exist.
var errRefused = errors.New("path refused")

// parsePath checks the part of a URL path after the listener's prefix
// (already percent-decoded by net/http) and returns the name to open
// below the served directory. A BEP 47 pad, DIR/.pad/N, is returned as
// DIR and N > 0: a client that does not know pads (aria2) asks for them
// as files, and gets N zero bytes. Anything that could leave the
// directory (.., an absolute path, a backslash, NUL) or names a hidden
// file is errRefused; symbolic links are left to os.Root.
func parsePath(p string) (name string, pad int64, err error) {
	if p == "" || len(p) > maxPathBytes || !fs.ValidPath(p) || p == "." {
		return "", 0, errRefused
	}
	if strings.ContainsAny(p, "\\\x00") {
		return "", 0, errRefused
	}
	rest := p
	for rest != "" {
		elem, tail, _ := strings.Cut(rest, "/")
		if len(elem) > maxNameBytes {
			return "", 0, errRefused
		}
		if elem[0] == '.' {
			// The one hidden name served: .pad as the directory of the
			// last element.
			if elem != ".pad" || tail == "" || strings.Contains(tail, "/") {
				return "", 0, errRefused
			}
			n, ok := padLength(tail)
			if !ok || len(p) == len(".pad/")+len(tail) {
				return "", 0, errRefused // not a length, or a pad with no torrent directory
			}
			return p[:len(p)-len("/.pad/")-len(tail)], n, nil
		}
		rest = tail
	}
	return p, 0, nil
}

// padLength reads N of .pad/N: decimal, no sign or leading zero, from 1 to
// maxPad.
func padLength(s string) (int64, bool) {
	if s == "" || s[0] == '0' || len(s) > 9 {
		return 0, false
	}
	var n int64
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, n <= maxPad
}
