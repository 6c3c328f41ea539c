package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is where the dashboard lives on the admin listener.
const Prefix = "/ui/"

var pages = template.Must(template.ParseFS(assets, "assets/*.html"))

// static serves app.js and app.css; the file names carry no version, so
// browsers revalidate.
var static = func() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err)
	}
	return http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
}()

// Handler returns the dashboard's routes, all under Prefix.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", d.index)
	mux.HandleFunc("GET "+Prefix+"login", d.loginPage)
	mux.HandleFunc("POST "+Prefix+"login", d.login)
	mux.HandleFunc("POST "+Prefix+"logout", d.logout)
	mux.Handle("GET "+Prefix+"static/{file}", d.staticFile())
	mux.HandleFunc("GET "+Prefix+"events", d.need(d.events))
	mux.HandleFunc("GET "+Prefix+"api/overview", d.need(d.overview))
	mux.HandleFunc("POST "+Prefix+"api/parse", d.need(d.parse))
	return headers(mux)
}

// headers sets what every dashboard reply carries: a policy that runs
// only our own scripts and styles, and no framing.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin") // not no-referrer: forms would then send Origin: null
		h.ServeHTTP(w, r)
	})
}

func (d *Dashboard) staticFile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("file") {
		case "app.js", "app.css":
			w.Header().Set("Cache-Control", "no-cache")
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// need lets through requests of a live session (CSRF-checked for
// changes, as Authorize does); others get 401.
func (d *Dashboard) need(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := d.Authorize(r); !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "log in at " + Prefix + "login"})
			return
		}
		h(w, r)
	}
}

func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	_, sess, ok := d.session(r)
	if !ok {
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	d.render(w, "index.html", map[string]string{"CSRF": sess.csrf})
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, "login.html", map[string]string{"Error": r.URL.Query().Get("e")})
}

func (d *Dashboard) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		d.log.Error("dashboard page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// maxLoginBody bounds a login form.
const maxLoginBody = 4 << 10

// login trades the admin token for a session. A form from another origin
// is refused, so no other site can log the browser in.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin login refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad login form", http.StatusBadRequest)
		return
	}
	if !d.deps.CheckToken(strings.TrimSpace(r.PostForm.Get("token"))) {
		d.failLog.Log("dashboard login refused: wrong token", slog.String("remote", r.RemoteAddr))
		http.Redirect(w, r, Prefix+"login?e=wrong", http.StatusSeeOther)
		return
	}
	id, _ := d.sessions.create(d.now())
	setCookie(w, r, id, SessionTTL)
	d.log.Info("dashboard login", "remote", r.RemoteAddr)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// logout ends the session; the form carries its CSRF token.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	id, sess, ok := d.session(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if ok && sameOrigin(r) && r.ParseForm() == nil && tokenEqual(r.PostForm.Get(csrfField), sess.csrf) {
		d.sessions.remove(id)
	} else if ok {
		http.Error(w, "logout refused: bad CSRF token or origin", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// overview is the configuration in force and the evidence log's latest
// checkpoint.
type overview struct {
	Config     string          `json:"config"` // TOML
	Checkpoint *checkpointView `json:"checkpoint,omitempty"`
	// CheckpointError says why there is no checkpoint.
	CheckpointError string `json:"checkpoint_error,omitempty"`
}

type checkpointView struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Root   string    `json:"root"`
	Note   string    `json:"note"`
}

// checkpointTimeout bounds the wait for the log's writer.
const checkpointTimeout = 2 * time.Second

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ov := overview{Config: d.config}
	if d.deps.Checkpoint == nil {
		ov.CheckpointError = "evidence is off (evidence.enabled = false)"
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), checkpointTimeout)
		cp, err := d.deps.Checkpoint(ctx)
		cancel()
		if err != nil {
			ov.CheckpointError = err.Error()
		} else {
			ov.Checkpoint = &checkpointView{Origin: cp.Origin, Size: cp.Size, Seq: cp.Seq, Time: cp.Time, Root: cp.Root.String(), Note: string(cp.Note)}
		}
	}
	writeJSON(w, http.StatusOK, ov)
}

// parse reads what the operator pasted or uploaded to add: a hash or a
// magnet link as text, or a .torrent file's bytes, and answers with the
// body of an add for POST /api/torrents.
func (d *Dashboard) parse(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpload+1))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "a .torrent file of at most 16 MiB"})
		return
	}
	t, err := parseAdd(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
