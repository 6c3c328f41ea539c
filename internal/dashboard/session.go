package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CookieName is the session cookie. Its value is a random session ID; the
// token itself never leaves the login request.
const CookieName = "warden_session"

// CSRFHeader carries a session's CSRF token on every change the page
// makes through the JSON API; forms carry it in the field csrfField.
const (
	CSRFHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// session is one login.
type session struct {
	csrf    string
	expires time.Time
}

// sessions are the logins, held in the server and bounded in number.
type sessions struct {
	mu  sync.Mutex // guards m
	m   map[string]session
	max int
	ttl time.Duration
}

func newSessions(max int, ttl time.Duration) *sessions {
	return &sessions{m: make(map[string]session, max), max: max, ttl: ttl}
}

// randomID returns 32 random bytes as hex.
func randomID() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}

// create starts a session at now; when the table is full, the session
// closest to expiry ends to make room.
func (s *sessions) create(now time.Time) (id string, sess session) {
	id, sess = randomID(), session{csrf: randomID(), expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var oldest string
		for k, v := range s.m {
			if oldest == "" || v.expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	s.m[id] = sess
	return id, sess
}

// get returns the live session with id.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	if id == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok || !now.Before(sess.expires) {
		return session{}, false
	}
	return sess, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// expire drops the sessions past their expiry.
func (s *sessions) expire(now time.Time) {
	s.mu.Lock()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	s.mu.Unlock()
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// session returns r's live session and its ID.
func (d *Dashboard) session(r *http.Request) (string, session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", session{}, false
	}
	sess, ok := d.sessions.get(c.Value, d.now())
	return c.Value, sess, ok
}

// Authorize reports whether r comes from a logged-in page: a live
// session cookie and, for anything but GET and HEAD, the session's CSRF
// token in the X-CSRF-Token header and no foreign Origin. The admin API
// calls it for requests without a bearer token; actor names who acts.
func (d *Dashboard) Authorize(r *http.Request) (actor string, ok bool) {
	_, sess, ok := d.session(r)
	if !ok {
		return "", false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !sameOrigin(r) || !tokenEqual(r.Header.Get(CSRFHeader), sess.csrf) {
			return "", false
		}
	}
	return "dashboard", true
}

func tokenEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin reports whether r was sent by a page of this listener: its
// Origin header, when present, is this host; else the browser's
// Sec-Fetch-Site, when present, says same-origin. A request with neither
// (not from a browser) passes: the CSRF token still stands in its way.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
		want := "http"
		if r.TLS != nil {
			want = "https"
		}
		return u.Scheme == want
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin" || s == "none"
	}
	return true
}

// setCookie gives the browser the session; Secure when the admin
// listener speaks TLS.
func setCookie(w http.ResponseWriter, r *http.Request, id string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    id,
		Path:     "/",
		MaxAge:   int(ttl / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}
