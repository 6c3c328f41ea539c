package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"warden/internal/reqstat"
	"warden/internal/status"
)

// handleStats serves the status snapshot: JSON for scripts (as always),
// or a page for people when asked with ?format=html or an Accept header
// that prefers text/html (a browser's).
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	if !wantsHTML(r) {
		writeJSON(w, http.StatusOK, s.deps.Status())
		return
	}
	buf := pagePool.Get().(*bytes.Buffer)
	defer pagePool.Put(buf)
	buf.Reset()
	if err := statsPage.Execute(buf, newStatsView(s.deps.Status())); err != nil {
		s.fail(w, fmt.Errorf("stats page: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// pagePool keeps the buffers pages are rendered into (about 10 KiB).
var pagePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// wantsHTML reports whether r asks for the page: format=html, or
// text/html ranked above application/json in Accept (*/* counts as
// JSON, so curl and scripts get what they always got).
func wantsHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "html":
		return true
	case "json":
		return false
	}
	var html, json float64
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		switch mt {
		case "text/html":
			html = max(html, q)
		case "application/json", "*/*":
			json = max(json, q)
		}
	}
	return html > json
}

// statsView is what the page shows, worked out from a snapshot.
type statsView struct {
	status.Snapshot
	Up       string // the uptime, as time.Duration writes it
	Outcomes []string
	Rows     []requestRow
}

// requestRow is one protocol's requests by outcome.
type requestRow struct {
	Protocol string
	Total    uint64
	Counts   []uint64
	IPv6     uint64
	P50, P99 string
}

func newStatsView(st status.Snapshot) statsView {
	v := statsView{Snapshot: st, Up: time.Duration(st.Uptime).String()}
	for o := range reqstat.NumOutcomes {
		v.Outcomes = append(v.Outcomes, strings.ReplaceAll(o.String(), "_", " "))
	}
	add := func(name string, t *reqstat.Table) {
		row := requestRow{Protocol: name}
		for _, n := range t.ByOutcome() {
			row.Counts = append(row.Counts, n)
			row.Total += n
		}
		for k := range t.Requests {
			for _, n := range t.Requests[k][reqstat.IPv6] {
				row.IPv6 += n
			}
		}
		row.P50, row.P99 = quantile(&t.Latency, 0.5), quantile(&t.Latency, 0.99)
		v.Rows = append(v.Rows, row)
	}
	if st.UDP != nil {
		add("UDP", &st.UDP.Requests)
	}
	if st.HTTP != nil {
		add("HTTP", &st.HTTP.Requests)
	}
	return v
}

// quantile returns the upper bound of the bucket holding quantile q of
// l, as text ("≤ 20µs"), or "–" with nothing observed.
func quantile(l *reqstat.Latency, q float64) string {
	n := l.Count()
	if n == 0 {
		return "–"
	}
	rank := uint64(q*float64(n-1)) + 1
	var cum uint64
	for i, c := range l.Counts {
		if cum += c; cum >= rank {
			if ub := reqstat.UpperBound(i); ub > 0 {
				return "≤ " + ub.String()
			}
			return "> " + reqstat.UpperBound(i-1).String()
		}
	}
	return "–"
}

var statsPage = template.Must(template.New("stats").Funcs(template.FuncMap{
	"n": func(v any) string { return groupDigits(fmt.Sprint(v)) },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
}).Parse(statsHTML))

// groupDigits puts thin spaces between groups of three digits of an
// integer's text.
func groupDigits(s string) string {
	if len(s) <= 4 || strings.ContainsAny(s, ".e") {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteString("\u2009")
		}
		b.WriteRune(c)
	}
	return b.String()
}

const statsHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>warden stats</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:62em;padding:0 1em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.3em 0}td,th{padding:.2em .7em;text-align:right;border-bottom:1px solid #eee}
th{font-weight:600;background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.meta{color:#666}.grid{display:flex;flex-wrap:wrap;gap:0 3em}code{font-size:.92em}
.bad{color:#a40000}
</style></head><body>
<h1>warden</h1>
<p class="meta">version {{.Version}} · mode {{.Mode}} · up {{.Up}} (since {{.Started.Format "2006-01-02 15:04:05 UTC"}}) · <a href="?format=json">JSON</a></p>

<h2>Requests by outcome</h2>
{{if .Rows}}<table>
<tr><th>protocol</th><th>total</th>{{range .Outcomes}}<th>{{.}}</th>{{end}}<th>IPv6</th><th>p50</th><th>p99</th></tr>
{{range .Rows}}<tr><td>{{.Protocol}}</td><td>{{n .Total}}</td>{{range .Counts}}<td>{{n .}}</td>{{end}}<td>{{n .IPv6}}</td><td>{{.P50}}</td><td>{{.P99}}</td></tr>
{{end}}</table>{{else}}<p>No tracker frontend is running.</p>{{end}}

<div class="grid">
<div><h2>Swarms</h2><table>
<tr><td>torrents</td><td>{{n .Swarm.Torrents}}</td></tr>
<tr><td>seeders</td><td>{{n .Swarm.Seeders}}</td></tr>
<tr><td>leechers</td><td>{{n .Swarm.Leechers}}</td></tr>
<tr><td>new torrents refused (full)</td><td>{{n .Swarm.RefusedFull}}</td></tr>
</table></div>
<div><h2>Registry</h2><table>
<tr><td>entries (active and revoked)</td><td>{{n .Registry.Entries}}</td></tr>
<tr><td>refused: not registered</td><td>{{n .Refused.Unregistered}}</td></tr>
<tr><td>refused: revoked</td><td>{{n .Refused.Revoked}}</td></tr>
</table></div>
<div><h2>Guard</h2><table>
<tr><td>allowed</td><td>{{n .Guard.Allowed}}</td></tr>
<tr><td>limited</td><td>{{n .Guard.Limited}}</td></tr>
<tr><td>banned</td><td>{{n .Guard.Banned}}</td></tr>
<tr><td>bans imposed</td><td>{{n .Guard.BansImposed}}</td></tr>
<tr><td>rate table evictions</td><td>{{n .Guard.Evictions}}</td></tr>
</table></div>
</div>

<h2>Offenders (turned away by the guard)</h2>
{{with .Offenders.Top}}<table><tr><th>source</th><th>requests</th><th>last seen</th></tr>
{{range .}}<tr><td><code>{{.Key}}</code></td><td>{{n .Count}}</td><td>{{ago .LastSeen}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}

<h2>Refused torrents</h2>
<div class="grid">
<div>{{with .Refused.TopHashes}}<table><tr><th>info hash</th><th>refusals</th></tr>
{{range .}}<tr><td><code>{{.Key}}</code></td><td>{{n .Count}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}</div>
<div>{{with .Refused.TopSources}}<table><tr><th>source</th><th>refusals</th></tr>
{{range .}}<tr><td><code>{{.Key}}</code></td><td>{{n .Count}}</td></tr>
{{end}}</table>{{end}}</div>
</div>
<p class="meta">Prometheus metrics: <code>/metrics</code> (same bearer token).</p>
</body></html>
`
