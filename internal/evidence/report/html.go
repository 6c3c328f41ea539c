package report

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained HTML page: styles and
// the chart (SVG) inline, no script, no external font, image or link, so
// it reads the same offline, printed, or forwarded to a provider.
func (r *Report) WriteHTML(w io.Writer) error {
	return pageTemplate.Execute(w, htmlPage{Report: r, Chart: newChart(r.Episodes, r.top()),
		ReporterName: r.reporterName(), PeriodText: r.periodText(), OperatorText: r.operatorText(),
		AttributionSummary: r.attributionSummary()})
}

type htmlPage struct {
	*Report
	Chart                                                      *chart
	ReporterName, PeriodText, OperatorText, AttributionSummary string
}

// svgPoints writes a series' points for a polyline.
func svgPoints(ps []point) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", p.X, p.Y)
	}
	return b.String()
}

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"count":    count,
	"rate":     rate,
	"stamp":    stamp,
	"clean":    clean,
	"org":      orgName,
	"actions":  actionsShort,
	"actlong":  actionsText,
	"hashst":   hashState,
	"verified": verifiedText,
	"yesno":    yesNo,
	"points":   svgPoints,
	"xarfjson": xarfJSON,
	"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dash":     orDash,
	"f1":       func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"sub":      func(a, b float64) float64 { return a - b },
	"add":      func(a, b float64) float64 { return a + b },
	"half":     func(a float64) float64 { return a / 2 },
	"termsV":   func() string { return termsVerified },
	"termsS":   func() string { return termsSpoofable },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="warden evidence report">
<title>Abuse report: {{clean .ReporterName}}, {{stamp .Generated}} UTC</title>
<style>
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; color: #1a1a1a; background: #fff; max-width: 1200px; margin: 24px auto; padding: 0 20px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ccc; }
h3 { font-size: 16px; margin: 22px 0 6px; }
h4 { font-size: 14px; margin: 14px 0 4px; }
p { margin: 6px 0; }
.meta { color: #555; }
.summary { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.summary div { border: 1px solid #ddd; border-radius: 4px; padding: 6px 12px; min-width: 110px; }
.summary b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { text-align: left; padding: 4px 7px; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f7f7f7; border: 1px solid #ddd; border-radius: 3px; padding: 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; white-space: nowrap; }
.verified { background: #e2f0e2; color: #17521b; }
.spoofable { background: #fbe8d3; color: #7a3c00; }
figure { margin: 8px 0; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font-family: system-ui, "DejaVu Sans", Arial, sans-serif; font-size: 12px; fill: #333; }
.legend { list-style: none; padding: 0; margin: 6px 0; font-size: 13px; }
.legend li { display: inline-block; margin-right: 18px; }
.swatch { display: inline-block; width: 18px; height: 4px; vertical-align: middle; margin-right: 6px; }
.problems li { color: #8a1c1c; }
footer { margin-top: 40px; color: #666; font-size: 12px; border-top: 1px solid #ccc; padding-top: 8px; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  h2, h3 { break-after: avoid; }
  tr, pre, figure, .summary { break-inside: avoid; }
  section.notice { break-before: page; }
}
</style>
</head>
<body>
<header>
<h1>Abuse report: {{clean .ReporterName}}</h1>
<p class="meta">Abusive traffic recorded by a BitTorrent tracker that tracks only torrents its operator publishes.
Sent by {{if .Reporter.Org}}{{clean .Reporter.Org}}{{else}}(the operator){{end}}{{if .Reporter.Contact}}, contact <b>{{clean .Reporter.Contact}}</b>{{end}}.</p>
<p class="meta">Generated <b>{{stamp .Generated}} UTC</b> by <code>warden evidence report</code>. {{.PeriodText}} All times are UTC.
Evidence: checkpoint {{.Checkpoint.Seq}} of the tamper-evident log ({{.Checkpoint.Size}} records, signed {{stamp .Checkpoint.Time}} UTC).</p>
</header>

<div class="summary">
<div><b>{{len .Episodes}}</b>episodes</div>
<div><b>{{len .Sources}}</b>sources</div>
<div><b>{{len .Organisations}}</b>organisations</div>
<div><b>{{actions .Actions}}</b>what warden did</div>
</div>

<h2>Requests per second, top sources</h2>
{{with .Chart}}
<figure>
<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="Requests per second over time for the top sources">
{{range .YTicks}}<line x1="{{$.Chart.Left}}" x2="{{sub $.Chart.W $.Chart.Right}}" y1="{{f1 .Pos}}" y2="{{f1 .Pos}}" stroke="#e1e1e1" stroke-width="1"/>
<text x="{{sub $.Chart.Left 8}}" y="{{add .Pos 4}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<line x1="{{f1 .Pos}}" x2="{{f1 .Pos}}" y1="{{sub $.Chart.H $.Chart.Bottom}}" y2="{{add (sub $.Chart.H $.Chart.Bottom) 5}}" stroke="#5a5a5a"/>
<text x="{{f1 .Pos}}" y="{{add (sub $.Chart.H $.Chart.Bottom) 19}}" text-anchor="middle">{{.Label}}</text>
{{end}}<line x1="{{.Left}}" x2="{{.Left}}" y1="{{.Top}}" y2="{{sub .H .Bottom}}" stroke="#5a5a5a"/>
<line x1="{{.Left}}" x2="{{sub .W .Right}}" y1="{{sub .H .Bottom}}" y2="{{sub .H .Bottom}}" stroke="#5a5a5a"/>
<text x="{{add .Left (half (sub (sub .W .Right) .Left))}}" y="{{sub .H 6}}" text-anchor="middle">{{.XTitle}}</text>
<text transform="translate(14 {{add .Top (half (sub (sub .H .Bottom) .Top))}}) rotate(-90)" text-anchor="middle">{{.YTitle}}</text>
{{range $s := .Series}}<polyline class="series" data-source="{{clean $s.Label}}" data-buckets="{{len $s.Points}}" fill="none" stroke="{{$s.Color}}" stroke-width="2" stroke-linejoin="round" points="{{points $s.Points}}"/>
{{if eq (len $s.Points) 1}}{{with index $s.Points 0}}<circle cx="{{f1 .X}}" cy="{{f1 .Y}}" r="3" fill="{{$s.Color}}"/>{{end}}{{end}}
{{end}}</svg>
<ul class="legend">{{range .Series}}<li><span class="swatch" style="background: {{.Color}}"></span>{{clean .Label}}: peak {{rate .Peak}}/s</li>{{end}}</ul>
<figcaption class="meta">Each point is one bucket of the episode's timeline: its count divided by its length ({{.XTitle}}).</figcaption>
</figure>
{{else}}<p>No episode has a timeline to draw.</p>{{end}}

<h2>By organisation</h2>
<table>
<tr><th>Organisation</th><th>Country</th><th>Abuse contact</th><th class="n">Sources</th><th class="n">Episodes</th><th class="n">Requests</th><th class="n">Peak/s</th><th>First seen</th><th>Last seen</th><th>What warden did</th></tr>
{{range .Organisations}}<tr><td>{{clean (org .ASN .Org)}}</td><td>{{clean .Country}}</td><td>{{dash (clean .AbuseEmail)}}</td><td class="n">{{len .Sources}}</td><td class="n">{{.Episodes}}</td><td class="n">{{count .Requests}}</td><td class="n">{{rate .PeakPerSec}}</td><td class="t">{{stamp .FirstSeen}}</td><td class="t">{{stamp .LastSeen}}</td><td>{{dash (actions .Actions)}}</td></tr>
{{end}}</table>

<h2>By source</h2>
<table>
<tr><th>Source</th><th>Organisation</th><th>Kinds</th><th class="n">Requests</th><th class="n">Peak/s</th><th class="n">Mean/s</th><th>Verified or spoofable</th><th>First seen</th><th>Last seen</th><th>What warden did</th></tr>
{{range .Sources}}<tr><td><code>{{clean .Source}}</code></td><td>{{clean (org .ASN .Org)}}</td><td>{{range $i, $k := .Kinds}}{{if $i}}, {{end}}{{clean $k}}{{end}}</td><td class="n">{{count .Requests}}</td><td class="n">{{rate .PeakPerSec}}</td><td class="n">{{rate .MeanPerSec}}</td><td><span class="tag {{if .Verified}}verified{{else}}spoofable{{end}}">{{verified .}}</span></td><td class="t">{{stamp .FirstSeen}}</td><td class="t">{{stamp .LastSeen}}</td><td>{{dash (actions .Actions)}}</td></tr>
{{end}}</table>

<h2>Episodes</h2>
<table>
<tr><th>Episode</th><th>Kind</th><th>State</th><th class="n">Requests</th><th class="n">Peak/s</th><th class="n">Mean/s</th><th>Verified</th><th>Clients claimed</th><th class="n">Record</th></tr>
{{range .Episodes}}<tr><td><code>{{clean .ID}}</code></td><td>{{clean .Kind}}</td><td>{{clean .State}}</td><td class="n">{{count .Requests}}</td><td class="n">{{rate .PeakPerSec}}</td><td class="n">{{rate .MeanPerSec}}</td><td>{{yesno .Verified}}</td><td>{{range $i, $c := .Clients}}{{if lt $i 2}}{{if $i}}; {{end}}{{clean $c.Client}} ({{clean $c.PeerID}}){{end}}{{end}}{{range $i, $u := .UserAgents}}{{if lt $i 1}}<br>User-Agent: {{clean $u.Value}}{{end}}{{end}}</td><td class="n">{{.Record}}</td></tr>
{{end}}</table>

<h2>Torrents asked for</h2>
{{if .Hashes}}<table>
<tr><th>Info hash</th><th class="n">Requests (sampled)</th><th class="n">Sources</th><th>Status</th></tr>
{{range .Hashes}}<tr><td><code>{{.InfoHash}}</code></td><td class="n">{{count .Count}}</td><td class="n">{{.Sources}}</td><td>{{clean (hashst .)}}</td></tr>
{{end}}</table>{{else}}<p>The episodes recorded no info hashes.</p>{{end}}

<h2>What warden did</h2>
<p>{{dash (actlong .Actions)}}.</p>
{{with .OperatorText}}<p>Other records of the period: {{.}}.</p>{{end}}

<h2>Attribution</h2>
<p>{{.AttributionSummary}}</p>

<h2>Evidence checkpoint</h2>
<p>Every record this report rests on is covered by checkpoint {{.Checkpoint.Seq}} of the evidence log ({{.Checkpoint.Size}} records, signed {{rfc3339 .Checkpoint.Time}}). The operator cannot later change or remove them without contradicting this signed note; keep it.</p>
<pre>{{.Checkpoint.Note}}</pre>
<p>Verifier key: <code>{{.Checkpoint.Key}}</code></p>
<p>{{.Checkpoint.HowToVerify}}</p>

<h2>Abuse notices</h2>
{{range .Organisations}}<section class="notice">
<h3>{{clean (org .ASN .Org)}}{{if .AbuseEmail}}: {{clean .AbuseEmail}}{{end}}</h3>
<pre>{{.Notice}}</pre>
{{if .XARFProblem}}<p>{{.XARFProblem}}</p>{{else}}<details class="xarf"><summary>XARF v4 reports ({{len .XARF}}, one per episode, the records as evidence; also <code>--format xarf</code>)</summary>
<pre>{{xarfjson .XARF}}</pre></details>{{end}}
</section>
{{end}}

<h2>Terms</h2>
<p>{{termsV}}</p>
<p>{{termsS}}</p>
{{if .Problems}}<h2>Problems</h2>
<ul class="problems">{{range .Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}

<footer>Generated {{rfc3339 .Generated}} by <code>warden evidence report</code> ({{.Format}}). Records proved against checkpoint {{.Checkpoint.Seq}}, key {{.Checkpoint.Key}}.</footer>
</body>
</html>
`
