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
	Up string // the uptime, as time.Duration writes it
	// Protocols name the columns of the requests table, Rows its rows: an
	// outcome (or a total) and a cell per protocol.
	Protocols []string
	Rows      []requestRow
}

// requestRow is one line of the requests table.
type requestRow struct {
	Name  string
	Cells []string
	Total bool // a line of totals, set apart
}

func newStatsView(st status.Snapshot) statsView {
	v := statsView{Snapshot: st, Up: time.Duration(st.Uptime).String()}
	var tables []*reqstat.Table
	if st.UDP != nil {
		v.Protocols = append(v.Protocols, "UDP")
		tables = append(tables, &st.UDP.Requests)
	}
	if st.HTTP != nil {
		v.Protocols = append(v.Protocols, "HTTP")
		tables = append(tables, &st.HTTP.Requests)
	}
	row := func(name string, total bool, cell func(t *reqstat.Table) string) {
		r := requestRow{Name: name, Total: total}
		for _, t := range tables {
			r.Cells = append(r.Cells, cell(t))
		}
		v.Rows = append(v.Rows, r)
	}
	count := func(n uint64) string { return groupDigits(strconv.FormatUint(n, 10)) }
	row("all requests", true, func(t *reqstat.Table) string {
		var n uint64
		for _, c := range t.ByOutcome() {
			n += c
		}
		return count(n)
	})
	for o := range reqstat.NumOutcomes {
		row(strings.ReplaceAll(o.String(), "_", " "), false, func(t *reqstat.Table) string { return count(t.ByOutcome()[o]) })
	}
	row("from IPv6", true, func(t *reqstat.Table) string {
		var n uint64
		for k := range t.Requests {
			for _, c := range t.Requests[k][reqstat.IPv6] {
				n += c
			}
		}
		return count(n)
	})
	row("latency p50", false, func(t *reqstat.Table) string { return quantile(&t.Latency, 0.5) })
	row("latency p99", false, func(t *reqstat.Table) string { return quantile(&t.Latency, 0.99) })
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
table{border-collapse:collapse;margin:.3em 0}td,th{padding:.2em .7em;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
th{font-weight:600;background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.meta{color:#666}.grid{display:flex;flex-wrap:wrap;gap:0 3em}code{font-size:.92em}
td code{white-space:normal;word-break:break-all}
tr.sum td{font-weight:600}
</style></head><body>
<h1>warden</h1>
<p class="meta">version {{.Version}} · mode {{.Mode}} · up {{.Up}} (since {{.Started.Format "2006-01-02 15:04:05 UTC"}}) · <a href="?format=json">JSON</a></p>

<h2>Requests by outcome</h2>
{{if .Protocols}}<table>
<tr><th>outcome</th>{{range .Protocols}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr{{if .Total}} class="sum"{{end}}><td>{{.Name}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
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
<tr><td>prefixes dropped in the kernel</td><td>{{n .Guard.KernelFilterPrefixes}}{{if .Guard.KernelFilterLeftOut}} ({{n .Guard.KernelFilterLeftOut}} more did not fit){{end}}</td></tr>
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
