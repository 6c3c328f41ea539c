package report

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// XARF is one XARF v4 report (https://xarf.org, schema
// connection-scraping.json over xarf-core.json), one per episode, as the
// format asks: one incident, one report.
//
// The type is connection/scraping: automated requests harvesting an API,
// counted with total_requests and request_rate. The closer-sounding
// connection/ddos and login_attack require source_port when the source is
// an address, and an episode does not record the datagrams' source
// ports; a guessed port would point a provider behind carrier-grade NAT
// at the wrong subscriber. A SYN flood is said so in description and
// tags.
type XARF struct {
	XARFVersion      string         `json:"xarf_version"`
	ReportID         string         `json:"report_id"`
	Timestamp        time.Time      `json:"timestamp"`
	Reporter         XARFContact    `json:"reporter"`
	Sender           XARFContact    `json:"sender"`
	SourceIdentifier string         `json:"source_identifier"`
	Category         string         `json:"category"`
	Type             string         `json:"type"`
	Description      string         `json:"description"`
	Protocol         string         `json:"protocol"`
	ScrapingPattern  string         `json:"scraping_pattern"`
	TargetContent    string         `json:"target_content"`
	UserAgent        string         `json:"user_agent,omitempty"`
	TotalRequests    uint64         `json:"total_requests"`
	RequestRate      float64        `json:"request_rate"`
	SessionDuration  int64          `json:"session_duration"`
	FirstSeen        time.Time      `json:"first_seen"`
	LastSeen         time.Time      `json:"last_seen"`
	Evidence         []XARFEvidence `json:"evidence"`
	Tags             []string       `json:"tags"`
}

// XARFContact is XARF's contact_info.
type XARFContact struct {
	Org     string `json:"org"`
	Contact string `json:"contact"`
	Domain  string `json:"domain"`
}

// XARFEvidence is XARF's evidence_item.
type XARFEvidence struct {
	ContentType string `json:"content_type"`
	Description string `json:"description"`
	Payload     string `json:"payload"` // base64
	Hash        string `json:"hash"`    // sha256:hex of the payload's bytes
}

// xarfVersion is the XARF version the reports follow.
const xarfVersion = "4.2.0"

// XARF's limits (xarf-core.json).
const (
	xarfMaxDescription = 1000
	xarfMaxOrg         = 200
)

// xarfReports builds the XARF reports of an organisation's episodes, or
// says why it cannot: XARF needs the reporter's email address.
func xarfReports(r *Report, eps []*Episode) ([]XARF, string) {
	out := []XARF{}
	if r.Reporter.Email == "" {
		if r.Reporter.Contact == "" {
			return out, "no XARF: the reporter has no email address (tracker.abuse_contact is not in the log's config record); give --contact EMAIL"
		}
		return out, fmt.Sprintf("no XARF: the reporter's contact %q is not an email address; give --contact EMAIL", r.Reporter.Contact)
	}
	_, domain, _ := strings.Cut(r.Reporter.Email, "@")
	me := XARFContact{Org: truncate(r.Reporter.Org, xarfMaxOrg), Contact: r.Reporter.Email, Domain: domain}
	if me.Org == "" {
		me.Org = domain
	}
	for _, ep := range eps {
		out = append(out, xarfFor(r, me, ep))
	}
	return out, ""
}

func xarfFor(r *Report, me XARFContact, ep *Episode) XARF {
	ver, spoof := split(ep.RequestsByKind)
	x := XARF{
		XARFVersion:      xarfVersion,
		ReportID:         reportID(r.Checkpoint.Key, ep),
		Timestamp:        ep.FirstSeen,
		Reporter:         me,
		Sender:           me,
		SourceIdentifier: ep.Source,
		Category:         "connection",
		Type:             "scraping",
		Protocol:         protocolOf(ep),
		ScrapingPattern:  "api_harvesting",
		TargetContent:    "api_data",
		TotalRequests:    max(ep.Requests, 1),
		RequestRate:      ep.MeanPerSec,
		SessionDuration:  int64(ep.duration() / time.Second),
		FirstSeen:        ep.FirstSeen,
		LastSeen:         ep.LastSeen,
		Tags:             []string{"service:bittorrent-tracker"},
	}
	if len(ep.UserAgents) > 0 {
		x.UserAgent = ep.UserAgents[0].Value
	}
	if ep.Kind == "syn" {
		x.Tags = append(x.Tags, "attack:syn-flood")
	} else {
		x.Tags = append(x.Tags, "attack:request-flood")
	}
	if ver > spoof {
		x.Tags = append(x.Tags, "source:verified")
	} else {
		x.Tags = append(x.Tags, "source:spoofable")
	}
	x.Description = truncate(xarfDescription(ep, ver, spoof), xarfMaxDescription)
	x.Evidence = []XARFEvidence{
		evidenceItem("application/json", fmt.Sprintf("episode record %d of the tracker's evidence log: its body, byte for byte", ep.Record), ep.body),
		evidenceItem("text/plain", fmt.Sprintf("signed checkpoint %d of the evidence log (%d records), which covers that record; verifier key %s",
			r.Checkpoint.Seq, r.Checkpoint.Size, r.Checkpoint.Key), []byte(r.Checkpoint.Note)),
	}
	return x
}

func xarfDescription(ep *Episode, ver, spoof uint64) string {
	var b strings.Builder
	what := "requests to our BitTorrent tracker"
	if ep.Kind == "syn" {
		what = "TCP SYNs to our BitTorrent tracker (a SYN flood)"
	}
	fmt.Fprintf(&b, "%s %s from %s to %s UTC: peak %s/s, mean %s/s. ", count(ep.Requests), what,
		ep.FirstSeen.Format(time.DateTime), ep.LastSeen.Format(time.DateTime), rate(ep.PeakPerSec), rate(ep.MeanPerSec))
	if ver > spoof {
		b.WriteString("Most came over a completed handshake, so the address is not forged. ")
	} else {
		b.WriteString("Most could carry a forged source address (bare connects, SYNs, malformed datagrams). ")
	}
	if ep.HashesSeen > 0 {
		fmt.Fprintf(&b, "It asked for about %s distinct torrents, %s of them registered with us. ", count(ep.HashesSeen), count(ep.HashesRegistered))
	}
	fmt.Fprintf(&b, "Episode %s; evidence: record %d of our tamper-evident log.", ep.ID, ep.Record)
	return b.String()
}

func evidenceItem(contentType, desc string, payload []byte) XARFEvidence {
	sum := sha256.Sum256(payload)
	return XARFEvidence{ContentType: contentType, Description: truncate(desc, 500),
		Payload: base64.StdEncoding.EncodeToString(payload), Hash: "sha256:" + hex.EncodeToString(sum[:])}
}

// reportID derives a report's UUID from the log's key, the episode and
// its record, so that the same episode state gives the same ID each time
// a report is made (a recipient can tell a repeat from a new report). It
// has the layout of a random (version 4) UUID.
func reportID(key string, ep *Episode) string {
	h := sha256.Sum256(fmt.Appendf(nil, "warden xarf\x00%s\x00%s\x00%d", key, ep.ID, ep.Record))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// protocolOf says whether an episode came mostly over TCP (SYNs, HTTP,
// User-Agents) or UDP (connects, forged connection IDs, datagrams). An
// announce or scrape counts for neither, but a UDP one needs a connect
// first.
func protocolOf(ep *Episode) string {
	q := ep.RequestsByKind
	udp := q.Connect.Spoofable + q.ForgedCookie.Verified + q.ForgedCookie.Spoofable + q.Garbage.Spoofable
	tcp := q.SYN.Verified + q.SYN.Spoofable + q.HTTP.Verified + q.HTTP.Spoofable + q.Connect.Verified + q.Garbage.Verified
	if len(ep.UserAgents) > 0 {
		tcp += q.Announce.Verified + q.Scrape.Verified
	}
	if udp > tcp {
		return "udp"
	}
	return "tcp"
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
