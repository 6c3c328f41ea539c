package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxShown bounds a recorded string as a report shows it.
const maxShown = 200

// clean makes a recorded string safe to show: what a source claims (a
// User-Agent, a client name) is the sender's to choose, so it is cut at
// maxShown bytes and its control and format characters replaced (see
// plain).
func clean(s string) string {
	s = plain(s)
	if len(s) <= maxShown {
		return s
	}
	return truncate(s, maxShown) + "…"
}

// plain replaces control and format characters (terminal escapes, line
// breaks, bidi overrides) and invalid UTF-8 with U+FFFD.
func plain(s string) string {
	bad := func(r rune) bool { return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }
	if strings.IndexFunc(s, bad) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if bad(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

// WriteJSON writes the report as indented JSON (the form scripts read).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// XARFGroup is the XARF reports for one organisation, with where to send
// them.
type XARFGroup struct {
	ASN        uint32 `json:"asn"`
	Org        string `json:"org"`
	AbuseEmail string `json:"abuse_email"`
	Reports    []XARF `json:"reports"`
}

// WriteXARF writes the XARF v4 reports as a JSON array of XARFGroup, an
// organisation each. It fails, writing nothing, when the reporter has no
// email address, which XARF requires.
func (r *Report) WriteXARF(w io.Writer) error {
	groups := []XARFGroup{}
	for _, o := range r.Organisations {
		if o.XARFProblem != "" {
			return fmt.Errorf("xarf: %s", strings.TrimPrefix(o.XARFProblem, "no XARF: "))
		}
		groups = append(groups, XARFGroup{ASN: o.ASN, Org: o.Org, AbuseEmail: o.AbuseEmail, Reports: o.XARF})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(groups)
}

// xarfJSON writes one organisation's XARF reports for a page.
func xarfJSON(xs []XARF) string {
	b, err := json.MarshalIndent(xs, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// WriteMarkdown writes the report as Markdown. pngName, if not empty, is
// the file the chart is in (see WritePNG), linked from the page.
func (r *Report) WriteMarkdown(w io.Writer, pngName string) error {
	var b strings.Builder
	r.markdown(&b, pngName)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) markdown(b *strings.Builder, pngName string) {
	fmt.Fprintf(b, "# Abuse report: %s\n\n", md(r.reporterName()))
	fmt.Fprintf(b, "Generated %s by `warden evidence report`. %s\n\n", r.Generated.Format("2006-01-02 15:04 UTC"), md(r.periodText()))
	fmt.Fprintf(b, "%s\n\n", md(r.summaryText()))

	b.WriteString("## Requests per second, top sources\n\n")
	c := newChart(r.Episodes, r.top())
	switch {
	case c == nil:
		b.WriteString("No episode has a timeline to draw.\n\n")
	case pngName == "":
		b.WriteString("(The chart is written as a PNG beside the page when the report goes to a file: `-o report.md`.)\n\n")
	default:
		fmt.Fprintf(b, "![Requests per second over time for the top sources](%s)\n\n", mdLink(pngName))
	}
	if c != nil {
		b.WriteString("| Colour | Source | Peak/s drawn |\n|---|---|--:|\n")
		for _, s := range c.Series {
			fmt.Fprintf(b, "| %s | %s | %s |\n", colourName(s.Color), md(s.Label), rate(s.Peak))
		}
		scale := ""
		if c.Log {
			scale = " The rate axis is logarithmic."
		}
		fmt.Fprintf(b, "\nRates are each bucket's count over its length; %s.%s\n\n", md(c.XTitle), scale)
	}

	b.WriteString("## By organisation\n\n")
	b.WriteString("| Organisation | Country | Abuse contact | Sources | Episodes | Requests | Peak/s | First seen | Last seen | What warden did |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|---|---|---|\n")
	for _, o := range r.Organisations {
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s |\n", md(orgName(o.ASN, o.Org)), md(o.Country),
			md(orDash(o.AbuseEmail)), len(o.Sources), o.Episodes, count(o.Requests), rate(o.PeakPerSec),
			stamp(o.FirstSeen), stamp(o.LastSeen), md(orDash(actionsShort(o.Actions))))
	}

	b.WriteString("\n## By source\n\n")
	b.WriteString("| Source | Organisation | Kinds | Requests | Peak/s | Mean/s | Verified or spoofable | First seen | Last seen | What warden did |\n")
	b.WriteString("|---|---|---|--:|--:|--:|---|---|---|---|\n")
	for _, s := range r.Sources {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", md(s.Source), md(orgName(s.ASN, s.Org)),
			md(strings.Join(s.Kinds, ", ")), count(s.Requests), rate(s.PeakPerSec), rate(s.MeanPerSec), verifiedText(s),
			stamp(s.FirstSeen), stamp(s.LastSeen), md(orDash(actionsShort(s.Actions))))
	}

	b.WriteString("\n## Episodes\n\n")
	b.WriteString("| Episode | Kind | State | Requests | Peak/s | Mean/s | Verified | Record |\n|---|---|---|--:|--:|--:|---|--:|\n")
	for _, ep := range r.Episodes {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %d |\n", md(ep.ID), md(ep.Kind), md(ep.State), count(ep.Requests),
			rate(ep.PeakPerSec), rate(ep.MeanPerSec), yesNo(ep.Verified), ep.Record)
	}

	b.WriteString("\n## Torrents asked for\n\n")
	if len(r.Hashes) == 0 {
		b.WriteString("The episodes recorded no info hashes.\n")
	} else {
		b.WriteString("| Info hash | Requests (sampled) | Sources | Status |\n|---|--:|--:|---|\n")
		for _, h := range r.Hashes {
			fmt.Fprintf(b, "| `%s` | %s | %d | %s |\n", h.InfoHash, count(h.Count), h.Sources, md(hashState(h)))
		}
	}

	b.WriteString("\n## What warden did\n\n")
	fmt.Fprintf(b, "%s\n", md(orDash(actionsText(r.Actions))))
	if ops := r.operatorText(); ops != "" {
		fmt.Fprintf(b, "\nOther records of the period: %s.\n", md(ops))
	}

	b.WriteString("\n## Attribution\n\n")
	b.WriteString(md(r.attributionSummary()) + "\n")

	b.WriteString("\n## Evidence checkpoint\n\n")
	fmt.Fprintf(b, "Every record this report rests on is covered by checkpoint %d of the evidence log (%d records, signed %s):\n\n",
		r.Checkpoint.Seq, r.Checkpoint.Size, r.Checkpoint.Time.Format(time.RFC3339))
	fence(b, "text", r.Checkpoint.Note)
	fmt.Fprintf(b, "\nVerifier key: `%s`\n\n%s\n", r.Checkpoint.Key, md(r.Checkpoint.HowToVerify))

	b.WriteString("\n## Abuse notices\n")
	for _, o := range r.Organisations {
		fmt.Fprintf(b, "\n### %s\n\n", md(orgName(o.ASN, o.Org)))
		fence(b, "text", o.Notice)
		if o.XARFProblem != "" {
			fmt.Fprintf(b, "\n%s\n", md(o.XARFProblem))
		} else {
			fmt.Fprintf(b, "\n%s, one per episode, with the records as evidence: `warden evidence report --format xarf`.\n",
				plural(len(o.XARF), "XARF v4 report", "XARF v4 reports"))
		}
	}

	b.WriteString("\n## Terms\n\n")
	b.WriteString(md(termsVerified) + "\n\n" + md(termsSpoofable) + "\n")
	if len(r.Problems) > 0 {
		b.WriteString("\n## Problems\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(b, "- %s\n", md(p))
		}
	}
}

const (
	termsVerified  = "Verified: the source completed a handshake before the request counted (a valid UDP connection ID, which only arrives at the real address, or a TCP connection), so its address is not forged."
	termsSpoofable = "Spoofable: bare UDP connects, malformed datagrams, TCP SYNs and datagrams dropped by the kernel need no handshake, so their source address may be forged."
)

// md escapes text for Markdown: punctuation that would format, HTML, and
// table pipes; line breaks become spaces.
func md(s string) string {
	s = plain(s)
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '|', '#', '!', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdLink escapes a link target.
func mdLink(s string) string {
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E").Replace(s)
}

// fence writes s as a fenced code block whose fence is longer than any
// run of backticks in s, so s cannot end it.
func fence(b *strings.Builder, lang, s string) {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	f := strings.Repeat("`", max(3, longest+1))
	fmt.Fprintf(b, "%s%s\n%s\n%s\n", f, lang, strings.TrimRight(s, "\n"), f)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func verifiedText(s Source) string {
	if s.Verified {
		return fmt.Sprintf("verified (%s of %s)", count(s.VerifiedRequests), count(s.VerifiedRequests+s.SpoofableRequests))
	}
	return fmt.Sprintf("spoofable (%s of %s)", count(s.SpoofableRequests), count(s.VerifiedRequests+s.SpoofableRequests))
}

// stamp writes a time in tables.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func colourName(hex string) string {
	switch hex {
	case "#0072B2":
		return "blue"
	case "#D55E00":
		return "vermilion"
	case "#009E73":
		return "green"
	case "#CC79A7":
		return "pink"
	case "#E69F00":
		return "orange"
	case "#56B4E9":
		return "sky blue"
	}
	return "black"
}

func (r *Report) reporterName() string {
	if r.Reporter.Org != "" {
		return r.Reporter.Org
	}
	return "BitTorrent tracker"
}

func (r *Report) periodText() string {
	p := r.Period
	var s string
	switch {
	case p.Since != nil && p.Until != nil:
		s = fmt.Sprintf("Period asked for: %s to %s.", stamp(*p.Since), stamp(*p.Until))
	case p.Since != nil:
		s = fmt.Sprintf("Period asked for: since %s.", stamp(*p.Since))
	case p.Until != nil:
		s = fmt.Sprintf("Period asked for: until %s.", stamp(*p.Until))
	default:
		s = "Period asked for: the whole log."
	}
	if len(r.Episodes) > 0 {
		s += fmt.Sprintf(" Episodes seen from %s to %s UTC.", stamp(p.FirstSeen), stamp(p.LastSeen))
	}
	return s
}

func (r *Report) summaryText() string {
	var total uint64
	peak := 0.0
	for _, ep := range r.Episodes {
		total += ep.Requests
		peak = max(peak, ep.PeakPerSec)
	}
	return fmt.Sprintf("%s from %s in %s: %s requests, peak %s/s.",
		plural(len(r.Episodes), "episode", "episodes"), plural(len(r.Sources), "source", "sources"),
		plural(len(r.Organisations), "organisation", "organisations"), count(total), rate(peak))
}

func (r *Report) operatorText() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.OperatorActions)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.OperatorActions[k]))
	}
	return strings.Join(parts, ", ")
}

func (r *Report) attributionSummary() string {
	if !r.Attribution.Recorded {
		return "Attribution source not recorded: no config record of the period names the databases that attributed the sources."
	}
	if len(r.Attribution.Sources) == 0 {
		return "No attribution database was configured."
	}
	parts := make([]string, len(r.Attribution.Sources))
	for i, s := range r.Attribution.Sources {
		parts[i] = sourceText(s)
	}
	return "Sources were attributed offline from: " + strings.Join(parts, "; ") + ". The abuse contacts come only from the operator's networks file."
}
