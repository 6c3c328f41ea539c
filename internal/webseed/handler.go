package webseed

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"os"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"warden/internal/limit"
	"warden/internal/ratelog"
)

// Outcome is how a request was answered; Stats counts each.
type Outcome uint8

const (
	Served      Outcome = iota // 200: a whole file
	Partial                    // 206: a range
	NotModified                // 304: the client's copy is current
	BadRange                   // 416: no byte of the range exists
	NotFound                   // 404: no such file, or a directory
	Refused                    // 404: a path outside the directory, hidden or malformed
	BadMethod                  // 405: not GET or HEAD
	Limited                    // 429: the source is over its request rate
	Banned                     // 403: the source is banned or blocklisted
	Failed                     // 500: the file could not be read
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"served", "partial", "not_modified", "bad_range", "not_found", "refused", "bad_method", "limited", "banned", "failed"}

func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// handler serves /content/, /torrents/ and /feeds/. It is safe for
// concurrent use.
type handler struct {
	content *os.Root
	// torrents and feeds are opened when first asked for, since publish
	// may create them after the listener starts.
	torrents, feeds lazyRoot
	guard           *limit.Guard
	bw              *limit.Limiter // nil: no bandwidth caps
	bwWait          time.Duration  // one unit at the per-source rate
	stall           time.Duration
	now             func() time.Time
	refusedLog      *ratelog.Logger
	errLog          *ratelog.Logger

	outcomes [numOutcomes]atomic.Uint64
	bytes    atomic.Uint64
	waits    atomic.Uint64
}

// lazyRoot is a directory opened as an os.Root on first use.
type lazyRoot struct {
	dir  string
	mu   sync.Mutex // guards opening
	root atomic.Pointer[os.Root]
}

func (l *lazyRoot) get() *os.Root {
	if r := l.root.Load(); r != nil || l.dir == "" {
		return r
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.root.Load(); r != nil {
		return r
	}
	r, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil // not there yet
	}
	l.root.Store(r)
	return r
}

func (l *lazyRoot) close() {
	if r := l.root.Load(); r != nil {
		r.Close()
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := remoteAddr(r)
	now := h.now()
	switch h.guard.Check(src, now) {
	case limit.Allowed:
	case limit.Limited:
		w.Header().Set("Retry-After", "1")
		h.fail(w, Limited, http.StatusTooManyRequests)
		return
	default: // banned or blocklisted: say so once, then hang up
		w.Header().Set("Connection", "close")
		h.fail(w, Banned, http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, BadMethod, http.StatusMethodNotAllowed)
		return
	}
	// The reply's first bytes must leave within the stall timeout too.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(now.Add(h.stall))
	p := r.URL.Path
	switch {
	case hasPrefix(p, "/content/"):
		h.serve(w, r, rc, src, h.content, p[len("/content/"):], true, "")
	case hasPrefix(p, "/torrents/"):
		h.serve(w, r, rc, src, h.torrents.get(), p[len("/torrents/"):], false, "application/x-bittorrent")
	case hasPrefix(p, "/feeds/"):
		w.Header().Set("Cache-Control", "no-cache")
		h.serve(w, r, rc, src, h.feeds.get(), p[len("/feeds/"):], false, "application/rss+xml; charset=utf-8")
	default:
		h.fail(w, NotFound, http.StatusNotFound)
	}
}

func hasPrefix(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// serve answers for the file rel names below root: a regular file, or
// with pads a BEP 47 pad of zeros. ctype "" takes the type from the
// name's extension.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, src netip.Addr, root *os.Root, rel string, pads bool, ctype string) {
	name, pad, err := parsePath(rel)
	if err != nil || pad > 0 && !pads {
		h.refused(w, src, rel, "path")
		return
	}
	if root == nil {
		h.fail(w, NotFound, http.StatusNotFound)
		return
	}
	if pad > 0 {
		h.servePad(w, r, rc, src, root, name, pad)
		return
	}
	f, err := root.Open(name)
	if err != nil {
		h.openFailed(w, src, rel, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		h.openFailed(w, src, rel, err)
		return
	}
	if !st.Mode().IsRegular() {
		h.fail(w, NotFound, http.StatusNotFound)
		return
	}
	hdr := w.Header()
	if ctype == "" {
		ctype = contentType(name)
	}
	hdr.Set("Content-Type", ctype)
	hdr.Set("ETag", etag(st))
	hdr.Set("Accept-Ranges", "bytes")
	pw := pacedWriter{ResponseWriter: w, h: h, rc: rc, src: src, r: r}
	http.ServeContent(&pw, r, "", st.ModTime(), f)
	h.count(pw.status)
}

// servePad answers DIR/.pad/N with N zero bytes, if DIR is a directory.
func (h *handler) servePad(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, src netip.Addr, root *os.Root, dir string, n int64) {
	st, err := root.Stat(dir)
	if err != nil || !st.IsDir() {
		if err == nil {
			err = fs.ErrNotExist
		}
		h.openFailed(w, src, dir+"/.pad", err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("ETag", `"pad-`+strconv.FormatInt(n, 10)+`"`)
	hdr.Set("Accept-Ranges", "bytes")
	pw := pacedWriter{ResponseWriter: w, h: h, rc: rc, src: src, r: r}
	http.ServeContent(&pw, r, "", time.Time{}, io.NewSectionReader(zeros{}, 0, n))
	h.count(pw.status)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	return len(p), nil
}

// openFailed answers an open or stat that failed: 404 for what does not
// exist (or is not a directory on the way), a refusal for a path that
// leaves the directory through a symbolic link, 500 otherwise.
func (h *handler) openFailed(w http.ResponseWriter, src netip.Addr, rel string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG):
		h.fail(w, NotFound, http.StatusNotFound)
	case isEscape(err):
		h.refused(w, src, rel, "symbolic link out of the directory")
	default:
		h.errLog.Log("web: cannot open a file to serve", slog.String("path", rel), slog.Any("err", err))
		h.fail(w, Failed, http.StatusInternalServerError)
	}
}

// isEscape reports an os.Root error for a name that resolves outside the
// root. os.Root says so only in its message ("path escapes from parent"),
// as a *PathError around an unexported error, so anything else that is not
// a plain errno is taken for it as well: it is refused either way.
func isEscape(err error) bool {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return false
	}
	var errno syscall.Errno
	return !errors.As(pe.Err, &errno) || errno == syscall.ELOOP
}

// refused answers a path that names nothing served as 404, and logs it (at
// most once a second: anyone can send these).
func (h *handler) refused(w http.ResponseWriter, src netip.Addr, rel, why string) {
	h.refusedLog.Log("web: path refused", slog.String("src", src.String()), slog.String("path", clipPath(rel)), slog.String("why", why))
	h.fail(w, Refused, http.StatusNotFound)
}

func clipPath(p string) string {
	if len(p) > 200 {
		return p[:200] + "…"
	}
	return p
}

func (h *handler) fail(w http.ResponseWriter, o Outcome, code int) {
	h.outcomes[o].Add(1)
	http.Error(w, http.StatusText(code), code)
}

func (h *handler) count(status int) {
	switch status {
	case http.StatusOK, 0:
		h.outcomes[Served].Add(1)
	case http.StatusPartialContent:
		h.outcomes[Partial].Add(1)
	case http.StatusNotModified:
		h.outcomes[NotModified].Add(1)
	case http.StatusRequestedRangeNotSatisfiable:
		h.outcomes[BadRange].Add(1)
	case http.StatusPreconditionFailed:
		h.outcomes[NotModified].Add(1)
	default:
		h.outcomes[Failed].Add(1)
	}
}

// contentType is the type of a file by its extension, or
// application/octet-stream.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// etag is a strong validator of the file's identity, size and time of
// last change: a file replaced, rewritten in place or touched gets another.
func etag(st os.FileInfo) string {
	ino, ctime := inodeCtime(st)
	b := make([]byte, 0, 64)
	b = append(b, '"')
	b = strconv.AppendUint(b, ino, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, st.Size(), 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, st.ModTime().UnixNano(), 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, ctime, 36)
	b = append(b, '"')
	return string(b)
}

// remoteAddr is the request's source address; the zero Addr if net/http
// gave something that is not ip:port (it does not on TCP).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
