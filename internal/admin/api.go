package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
)

// maxBody bounds a request body, and a reply the client reads whole: a
// batch of MaxAddBatch hybrid torrents with long names fits, and a page of
// MaxListLimit entries.
const maxBody = 32 << 20

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /stats", s.auth(s.handleStats))
	if s.deps.Metrics != nil {
		mux.Handle("GET /metrics", s.auth(s.deps.Metrics.ServeHTTP))
	}
	mux.Handle("GET /api/torrents", s.auth(s.listTorrents))
	mux.Handle("POST /api/torrents", s.auth(s.addTorrents))
	mux.Handle("GET /api/torrents/{hash}", s.auth(s.getTorrent))
	mux.Handle("POST /api/torrents/{hash}/revoke", s.auth(s.revokeTorrent))
	mux.Handle("POST /api/torrents/{hash}/restore", s.auth(s.restoreTorrent))
	mux.Handle("GET /api/torrents/{hash}/history", s.auth(s.torrentHistory))
	mux.Handle("GET /api/changes", s.auth(s.changes))
	mux.Handle("GET /api/registry/backup", s.auth(s.backup))
	mux.Handle("GET /api/refused", s.auth(s.refused))
	mux.Handle("GET /api/guard/bans", s.auth(s.bans))
	mux.Handle("POST /api/guard/ban", s.auth(s.ban))
	mux.Handle("POST /api/guard/unban", s.auth(s.unban))
	mux.Handle("GET /api/guard/export", s.auth(s.export))
	mux.Handle("GET /api/episodes", s.auth(s.listEpisodes))
	mux.Handle("GET /api/episodes/{id}", s.auth(s.getEpisode))
	// Profiles for the operator, behind the token like everything else.
	mux.Handle("GET /debug/pprof/", s.auth(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", s.auth(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", s.auth(pprof.Trace))
	mux.Handle("GET /debug/pprof/symbol", s.auth(pprof.Symbol))
	if s.deps.UI != nil {
		mux.Handle("/ui/", s.deps.UI.Handler())
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	}
	return mux
}

// auth lets a request through only with the right bearer token, or from
// a logged-in dashboard page (then the actor is the dashboard's).
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && s.deps.UI != nil {
			if who, ok := s.deps.UI.Authorize(r); ok {
				r.Header.Set("X-Warden-Actor", who)
				h(w, r)
				return
			}
		}
		if !ok || !s.deps.Token.matches(strings.TrimSpace(got)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="warden"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token: see "+TokenFile+" in the data directory"))
			return
		}
		h(w, r)
	})
}

// actor names who made a change: the X-Warden-Actor header the CLI sends
// (user@host), else "api".
func actor(r *http.Request) string {
	if a := strings.TrimSpace(r.Header.Get("X-Warden-Actor")); a != "" {
		return a
	}
	return "api"
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// The page sizes of GET /api/torrents. A reply is bounded however large
// the registry: a client pages on with after=next_after.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10_000
)

// ListPage is the reply of GET /api/torrents: entries in ID order and, if
// there may be more, the ID to pass as after= for the next page.
type ListPage struct {
	Torrents  []registry.Entry `json:"torrents"`
	NextAfter int64            `json:"next_after,omitempty"`
}

// listTorrents streams one page of entries straight from the database, so
// neither the registry's size nor the page's is held in memory. A failure
// after the first byte aborts the reply rather than end it well formed.
func (s *Server) listTorrents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f registry.Filter
	if st := q.Get("state"); st != "" {
		if err := f.State.UnmarshalText([]byte(st)); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("state: %w", err))
			return
		}
	}
	f.NameContains = q.Get("name")
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, errors.New("after: must be a non-negative integer (an entry ID)"))
			return
		}
		f.AfterID = n
	}
	limit := DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit: must be 1-%d", MaxListLimit))
			return
		}
		limit = n
	}
	f.Limit = limit + 1 // one more, to know whether another page follows

	var (
		sent   int
		lastID int64
		enc    = json.NewEncoder(w)
	)
	err := s.deps.Registry.Walk(r.Context(), f, func(e *registry.Entry) error {
		if sent == limit {
			return errPageFull
		}
		if sent == 0 {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"torrents":[`+"\n")
		} else {
			io.WriteString(w, ",")
		}
		sent++
		lastID = e.ID
		return enc.Encode(e)
	})
	more := errors.Is(err, errPageFull)
	if err != nil && !more {
		if sent == 0 {
			s.fail(w, err)
			return
		}
		s.log.Error("list torrents: reply cut short", "err", err)
		panic(http.ErrAbortHandler) // the client sees a broken reply, not a short list
	}
	if sent == 0 {
		writeJSON(w, http.StatusOK, ListPage{Torrents: []registry.Entry{}})
		return
	}
	io.WriteString(w, "]")
	if more {
		fmt.Fprintf(w, `,"next_after":%d`, lastID)
	}
	io.WriteString(w, "}\n")
}

// errPageFull stops a Walk once a page is full.
var errPageFull = errors.New("page full")

// AddRequest is the body of POST /api/torrents.
type AddRequest struct {
	Torrents []AddTorrent `json:"torrents"`
}

// AddTorrent is one torrent to register: a v1 hash, a v2 hash (64 hex
// digits), or both.
type AddTorrent struct {
	V1   string `json:"v1,omitempty"`
	V2   string `json:"v2,omitempty"`
	Name string `json:"name,omitempty"`
}

// AddResponse answers POST /api/torrents.
type AddResponse struct {
	Added    int              `json:"added"`
	Existing int              `json:"existing"`
	Torrents []registry.Entry `json:"torrents,omitempty"` // for a single add
}

// MaxAddBatch bounds the torrents of one POST /api/torrents, so each
// request is one short transaction, answered well within any timeout on a
// busy machine. Larger imports are sent in batches (the CLI does so).
const MaxAddBatch = 10_000

// addWriteTimeout replaces the server's write timeout for an add: the
// answer must reach the client even when the transaction waited for
// another process's write lock, or the operator never learns that it
// committed.
const addWriteTimeout = 2 * time.Minute

func (s *Server) addTorrents(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(addWriteTimeout))
	var req AddRequest
	if err := decodeBody(r, &req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: send at most %d torrents per request", err, MaxAddBatch))
			return
		}
		writeError(w, http.StatusBadRequest, err)
		return
	}
	switch n := len(req.Torrents); {
	case n == 0:
		writeError(w, http.StatusBadRequest, errors.New("torrents: give at least one"))
		return
	case n > MaxAddBatch:
		writeError(w, http.StatusRequestEntityTooLarge,
			fmt.Errorf("torrents: %d in one request, at most %d; send them in batches", n, MaxAddBatch))
		return
	}
	entries := make([]registry.Entry, len(req.Torrents))
	for i, t := range req.Torrents {
		e, err := t.entry()
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("torrents[%d]: %w", i, err))
			return
		}
		entries[i] = e
	}
	if len(entries) == 1 {
		e, err := s.deps.Registry.Add(r.Context(), entries[0], actor(r))
		switch {
		case errors.Is(err, registry.ErrExists):
			writeJSON(w, http.StatusOK, AddResponse{Existing: 1, Torrents: []registry.Entry{e}})
		case err != nil:
			s.fail(w, err)
		default:
			s.record(r, evidence.KindRegistryAdd, TorrentAction{InfoHash: wireHash(e).String(), Name: e.Name, By: actor(r)})
			writeJSON(w, http.StatusCreated, AddResponse{Added: 1, Torrents: []registry.Entry{e}})
		}
		return
	}
	added, err := s.deps.Registry.AddMany(r.Context(), entries, actor(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	if added > 0 {
		s.record(r, evidence.KindRegistryAdd, addedRecord(entries, added, actor(r)))
	}
	code := http.StatusOK
	if added > 0 {
		code = http.StatusCreated
	}
	writeJSON(w, code, AddResponse{Added: added, Existing: len(entries) - added})
}

func (t AddTorrent) entry() (registry.Entry, error) {
	e := registry.Entry{Name: t.Name}
	if t.V1 != "" {
		if len(t.V1) != 40 {
			return e, errors.New("v1: must be 40 hex digits")
		}
		ih, err := bittorrent.ParseInfoHash(t.V1)
		if err != nil {
			return e, fmt.Errorf("v1: %w", err)
		}
		e.V1 = ih
	}
	if t.V2 != "" {
		h, err := bittorrent.ParseInfoHashV2(t.V2)
		if err != nil {
			return e, fmt.Errorf("v2: %w", err)
		}
		e.V2 = h
	}
	if t.V1 == "" && t.V2 == "" {
		return e, errors.New("give v1, v2 or both")
	}
	return e, nil
}

// lookup finds the entry a path names: 40 hex digits (a v1 hash or a
// truncated v2 hash) or 64 (a full v2 hash).
func (s *Server) lookup(r *http.Request) (registry.Entry, error) {
	h := r.PathValue("hash")
	if len(h) == 64 {
		v2, err := bittorrent.ParseInfoHashV2(h)
		if err != nil {
			return registry.Entry{}, badRequest{err}
		}
		return s.deps.Registry.GetV2(r.Context(), v2)
	}
	if len(h) != 40 {
		return registry.Entry{}, badRequest{errors.New("hash: must be 40 or 64 hex digits")}
	}
	ih, err := bittorrent.ParseInfoHash(h)
	if err != nil {
		return registry.Entry{}, badRequest{err}
	}
	return s.deps.Registry.Get(r.Context(), ih)
}

// wireHash is the 20-byte hash by which Revoke and Restore find e.
func wireHash(e registry.Entry) bittorrent.InfoHash {
	if e.HasV1() {
		return e.V1
	}
	return e.V2.Truncate()
}

func (s *Server) getTorrent(w http.ResponseWriter, r *http.Request) {
	e, err := s.lookup(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// RevokeRequest is the body of POST /api/torrents/{hash}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) revokeTorrent(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	e, err := s.lookup(r)
	if err == nil {
		e, err = s.deps.Registry.Revoke(r.Context(), wireHash(e), req.Reason, actor(r))
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.record(r, evidence.KindRegistryRevoke, TorrentAction{InfoHash: wireHash(e).String(), Name: e.Name, Reason: req.Reason, By: actor(r)})
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) restoreTorrent(w http.ResponseWriter, r *http.Request) {
	e, err := s.lookup(r)
	if err == nil {
		e, err = s.deps.Registry.Restore(r.Context(), wireHash(e), actor(r))
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.record(r, evidence.KindRegistryRestore, TorrentAction{InfoHash: wireHash(e).String(), Name: e.Name, By: actor(r)})
	writeJSON(w, http.StatusOK, e)
}

// ChangesResponse answers GET /api/torrents/{hash}/history and GET
// /api/changes: rows of the registry's audit log, oldest first.
type ChangesResponse struct {
	Changes []registry.Change `json:"changes"`
}

// The page sizes of GET /api/changes. The log only grows, so a reply is
// bounded even when the caller asks for no limit.
const (
	DefaultChangesLimit = 100
	MaxChangesLimit     = 1000
)

func (s *Server) torrentHistory(w http.ResponseWriter, r *http.Request) {
	e, err := s.lookup(r)
	var cs []registry.Change
	if err == nil {
		cs, err = s.deps.Registry.History(r.Context(), wireHash(e))
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeChanges(w, cs)
}

func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, errors.New("after: must be a non-negative integer (a seq)"))
			return
		}
		after = n
	}
	limit := DefaultChangesLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxChangesLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit: must be 1-%d", MaxChangesLimit))
			return
		}
		limit = n
	}
	cs, err := s.deps.Registry.Changes(r.Context(), after, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeChanges(w, cs)
}

// writeChanges writes cs, as [] rather than null when empty.
func writeChanges(w http.ResponseWriter, cs []registry.Change) {
	if cs == nil {
		cs = []registry.Change{}
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: cs})
}

// Headers of GET /api/registry/backup: how far the copy has got, so the
// client can check the file it wrote.
const (
	HeaderGeneration = "X-Warden-Registry-Generation"
	HeaderEntries    = "X-Warden-Registry-Entries"
)

// backupWriteTimeout replaces the server's write timeout for a backup,
// which may be hundreds of megabytes on a slow link.
const backupWriteTimeout = time.Hour

// backup answers with a consistent copy of the registry, changes still in
// its write-ahead log included, as a SQLite file. The copy is made in the
// registry's directory (the one place the service may write), opened,
// removed, and then sent, so nothing is left behind however the request
// ends.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	reg := s.deps.Registry
	tmp, err := os.CreateTemp(filepath.Dir(reg.Path()), ".registry-backup-*.db")
	if err != nil {
		s.fail(w, fmt.Errorf("backup: %w", err))
		return
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	info, err := reg.Backup(r.Context(), tmp.Name())
	if err != nil {
		s.fail(w, err)
		return
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		s.fail(w, fmt.Errorf("backup: %w", err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.fail(w, fmt.Errorf("backup: %w", err))
		return
	}
	os.Remove(tmp.Name()) // f stays readable
	h := w.Header()
	h.Set("Content-Type", "application/vnd.sqlite3")
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set("Content-Disposition", `attachment; filename="registry-`+time.Now().UTC().Format("20060102T150405Z")+`.db"`)
	h.Set(HeaderGeneration, strconv.FormatInt(info.Generation, 10))
	h.Set(HeaderEntries, strconv.FormatInt(info.Entries, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		s.log.Warn("registry backup not delivered", "err", err)
		return
	}
	s.log.Info("registry backup sent", "entries", info.Entries, "generation", info.Generation, "bytes", fi.Size(), "by", actor(r))
}

func (s *Server) refused(w http.ResponseWriter, r *http.Request) {
	n := 20
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, errors.New("n: must be 1-1000"))
			return
		}
	}
	writeJSON(w, http.StatusOK, s.deps.Knocks.Refusals(n))
}

// BansResponse answers GET /api/guard/bans.
type BansResponse struct {
	Bans  []limit.Ban `json:"bans"`
	Stats limit.Stats `json:"stats"`
	// Offenders are the sources most often turned away as over their
	// rate or banned.
	Offenders evidence.Offenders `json:"offenders"`
}

func (s *Server) bans(w http.ResponseWriter, r *http.Request) {
	lim := s.deps.Guard.Limiter()
	bans := lim.Bans(time.Now())
	if bans == nil {
		bans = []limit.Ban{}
	}
	writeJSON(w, http.StatusOK, BansResponse{Bans: bans, Stats: lim.Stats(), Offenders: s.deps.Knocks.Offenders(20)})
}

// BanRequest is the body of POST /api/guard/ban.
type BanRequest struct {
	// Prefix is a key of the limiter: an address (an IPv4 /32, or an
	// IPv6 /64 by default) or a prefix (/24, /48 by default).
	Prefix string `json:"prefix"`
	// Duration is how long the ban lasts, as Go writes durations ("1h",
	// "90m").
	Duration string `json:"duration"`
}

// ban imposes a ban, or lengthens a running one, and answers with it as
// GET /api/guard/bans would list it: 400 for a prefix that is not a key
// of the limiter, 409 when the ban table has no room for it.
func (s *Server) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	p, err := limit.ParsePrefix(req.Prefix)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("prefix: %w", err))
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("duration: %q is not a duration such as 1h or 90m", req.Duration))
		return
	}
	b, err := s.deps.Guard.Limiter().Ban(p, d, time.Now())
	switch {
	case errors.Is(err, limit.ErrBanTableFull):
		writeError(w, http.StatusConflict, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.log.Warn("banned", "prefix", p.String(), "until", b.Until, "by", actor(r))
	s.record(r, evidence.KindBan, BanAction{Prefix: p.String(), Until: b.Until, By: actor(r)})
	writeJSON(w, http.StatusOK, b)
}

// UnbanRequest is the body of POST /api/guard/unban.
type UnbanRequest struct {
	Prefix string `json:"prefix"` // an address or a CIDR prefix
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request) {
	var req UnbanRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	p, err := limit.ParsePrefix(req.Prefix)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("prefix: %w", err))
		return
	}
	if !s.deps.Guard.Limiter().Unban(p) {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s is not banned", p))
		return
	}
	s.log.Warn("unbanned", "prefix", p.String(), "by", actor(r))
	s.record(r, evidence.KindUnban, BanAction{Prefix: p.String(), By: actor(r)})
	writeJSON(w, http.StatusOK, map[string]string{"unbanned": p.String()})
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "nft"
	}
	now := time.Now()
	var buf strings.Builder
	if err := limit.WriteBans(&buf, format, s.deps.Guard.Limiter().Bans(now), now); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, buf.String())
}

type badRequest struct{ error }

// busyRetryAfter is the Retry-After of a 503 "registry busy": the change
// was not made, and another process's write transaction usually ends soon.
const busyRetryAfter = 5 * time.Second

// fail maps an error to its status: 400 for bad input, 404 for an unknown
// torrent, 409 for a conflict, 503 with Retry-After when another process
// holds the registry's write lock, and 500 (logged, not shown) for the
// rest.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var br badRequest
	switch {
	case errors.As(err, &br), errors.Is(err, registry.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, registry.ErrConflict):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, registry.ErrBusy):
		s.log.Warn("registry busy; change refused with 503", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(busyRetryAfter.Seconds())))
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		s.log.Error("admin request failed", "err", err)
		writeError(w, http.StatusInternalServerError, errors.New("internal error; see the server log"))
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
