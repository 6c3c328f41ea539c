package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"warden/internal/asn"
	"warden/internal/evidence"
)

// notice writes the plain-text abuse notice for one organisation: who we
// are, what was seen from where, when and how much, what we did, and the
// checkpoint that commits to the records.
func notice(r *Report, o *Organisation, eps []*Episode) string {
	var b strings.Builder
	name := orgName(o.ASN, o.Org)
	if o.AbuseEmail != "" {
		fmt.Fprintf(&b, "To: %s\n", o.AbuseEmail)
	} else {
		b.WriteString("To: (no abuse address for this network in our networks file: look it up in the registry's whois; warden does not guess)\n")
	}
	fmt.Fprintf(&b, "Subject: Abusive traffic to our BitTorrent tracker from %s, %s\n\n", name, span(o.FirstSeen, o.LastSeen))

	b.WriteString("Hello,\n\n")
	me := r.Reporter.Org
	if me == "" {
		me = "(our name: give --org)"
	}
	contact := r.Reporter.Contact
	if contact == "" {
		contact = "(our contact: give --contact)"
	}
	fmt.Fprintf(&b, "We run a BitTorrent tracker (%s, contact %s) that tracks only torrents we publish ourselves.\n", me, contact)
	where := name
	if o.Country != "" {
		where += ", " + o.Country
	}
	if len(o.Networks) > 0 {
		where += "; " + strings.Join(o.Networks, ", ")
	}
	fmt.Fprintf(&b, "It recorded the traffic below from %s attributed to your network (%s). Times are UTC.\n",
		plural(len(o.Sources), "address", "addresses"), where)

	for _, ep := range eps {
		b.WriteString("\n")
		writeEpisodeText(&b, ep)
	}

	fmt.Fprintf(&b, "\nIn all: %s requests, peak %s/s.", count(o.Requests), rate(o.PeakPerSec))
	if did := actionsText(o.Actions); did != "" {
		fmt.Fprintf(&b, " What we did: %s.", did)
	}
	b.WriteString("\nPlease make the sender stop, or tell us who we should ask.\n")

	b.WriteString("\nEvidence\n")
	them := "them"
	if len(eps) == 1 {
		them = "it"
	}
	fmt.Fprintf(&b, "The figures above are from %s of our tamper-evident evidence log (a Merkle tree with signed checkpoints).\n",
		recordList(eps))
	fmt.Fprintf(&b, "Its latest signed checkpoint, number %d, covers %s. It is the lines between the markers, byte for byte:\n\n", r.Checkpoint.Seq, them)
	b.WriteString("-----BEGIN WARDEN CHECKPOINT-----\n")
	b.WriteString(r.Checkpoint.Note)
	if !strings.HasSuffix(r.Checkpoint.Note, "\n") {
		b.WriteString("\n")
	}
	b.WriteString("-----END WARDEN CHECKPOINT-----\n")
	fmt.Fprintf(&b, "\nVerifier key: %s\n", r.Checkpoint.Key)
	b.WriteString("Keep this checkpoint: we cannot later change or remove these records without contradicting it.\n")
	b.WriteString("We can send the records with their inclusion proofs, which anyone can check against it.\n")

	b.WriteString("\nAttribution: ")
	b.WriteString(attributionText(r, eps))
	b.WriteString("\n")

	fmt.Fprintf(&b, "\nRegards,\n%s\n%s\n", me, contact)
	return b.String()
}

// writeEpisodeText describes one episode in a few indented lines.
func writeEpisodeText(b *strings.Builder, ep *Episode) {
	fmt.Fprintf(b, "%s\n", ep.Source)
	fmt.Fprintf(b, "  %s to %s (%s)", ep.FirstSeen.Format(time.DateTime), ep.LastSeen.Format(time.DateTime), ep.duration().Round(time.Second))
	if ep.State == "open" {
		b.WriteString(", still going when the log was last written")
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "  %s requests: peak %s/s, mean %s/s\n", count(ep.Requests), rate(ep.PeakPerSec), rate(ep.MeanPerSec))
	ver, spoof := split(ep.RequestsByKind)
	if ver > spoof {
		fmt.Fprintf(b, "  verified: %s of them came over a completed handshake (a UDP connection ID or TCP), so the address is not forged\n", count(ver))
	} else {
		fmt.Fprintf(b, "  spoofable: %s of them were bare connects, SYNs or malformed datagrams, which can carry a forged address\n", count(spoof))
	}
	if kinds := kindsText(ep); kinds != "" {
		fmt.Fprintf(b, "  by kind: %s\n", kinds)
	}
	if ep.HashesSeen > 0 || len(ep.Hashes) > 0 {
		fmt.Fprintf(b, "  torrents asked for: about %s, %s of them registered with us", count(max(ep.HashesSeen, uint64(len(ep.Hashes)))), count(ep.HashesRegistered))
		for i, h := range ep.Hashes[:min(3, len(ep.Hashes))] {
			if i == 0 {
				b.WriteString("; for example")
			}
			fmt.Fprintf(b, "\n    %s (%s requests, %s)", h.InfoHash, count(h.Count), hashState(h))
		}
		b.WriteString("\n")
	}
	if len(ep.Clients) > 0 {
		c := ep.Clients[0]
		fmt.Fprintf(b, "  client claimed: %s (peer ID %s)\n", c.Client, c.PeerID)
	}
	if len(ep.UserAgents) > 0 {
		fmt.Fprintf(b, "  User-Agent: %s\n", ep.UserAgents[0].Value)
	}
	if did := actionsText(ep.Actions); did != "" {
		fmt.Fprintf(b, "  what we did: %s\n", did)
	}
}

func hashState(h Hash) string {
	switch {
	case h.Revoked && h.Reason != "":
		return "revoked: " + h.Reason
	case h.Revoked:
		return "revoked"
	case h.Registered:
		return "registered"
	}
	return "not registered"
}

// kindsText lists an episode's requests by kind, largest first.
func kindsText(ep *Episode) string {
	var parts []string
	q := ep.RequestsByKind
	for _, k := range []struct {
		name string
		n    uint64
	}{
		{"announce", q.Announce.Verified + q.Announce.Spoofable},
		{"connect", q.Connect.Verified + q.Connect.Spoofable},
		{"scrape", q.Scrape.Verified + q.Scrape.Spoofable},
		{"SYN", q.SYN.Verified + q.SYN.Spoofable},
		{"malformed", q.Garbage.Verified + q.Garbage.Spoofable},
		{"forged connection ID", q.ForgedCookie.Verified + q.ForgedCookie.Spoofable},
		{"dropped by our kernel (banned)", q.KernelDropped.Verified + q.KernelDropped.Spoofable},
		{"other HTTP", q.HTTP.Verified + q.HTTP.Spoofable},
	} {
		if k.n > 0 {
			parts = append(parts, k.name+" "+count(k.n))
		}
	}
	return strings.Join(parts, ", ")
}

// actionsText says what warden did, or "" if nothing.
func actionsText(a evidence.Actions) string {
	return actionsWords(a, [5]string{"refused (torrent not tracked)", "rate-limited", "dropped while banned",
		"dropped by the kernel while banned", "dropped (blocklist)"})
}

// actionsShort is actionsText for table cells.
func actionsShort(a evidence.Actions) string {
	return actionsWords(a, [5]string{"refused", "limited", "banned", "kernel-dropped", "blocked"})
}

func actionsWords(a evidence.Actions, words [5]string) string {
	var parts []string
	for i, n := range [5]uint64{a.Refused, a.Limited, a.Banned, a.KernelDropped, a.Blocked} {
		if n > 0 {
			parts = append(parts, count(n)+" "+words[i])
		}
	}
	return strings.Join(parts, ", ")
}

// recordList names the records of eps: "record 7", "records 3 and 7",
// "records 1, 3 and 7".
func recordList(eps []*Episode) string {
	idx := make([]int64, len(eps))
	for i, ep := range eps {
		idx[i] = ep.Record
	}
	slices.Sort(idx)
	parts := make([]string, len(idx))
	for i, x := range idx {
		parts[i] = strconv.FormatInt(x, 10)
	}
	if len(parts) == 1 {
		return "record " + parts[0]
	}
	return "records " + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// attributionText says what the attribution rests on.
func attributionText(r *Report, eps []*Episode) string {
	used := map[string]bool{}
	for _, ep := range eps {
		if ep.AttributionSource != "" {
			used[ep.AttributionSource] = true
		}
	}
	if len(used) == 0 {
		return "none of our attribution sources knew these addresses."
	}
	if !r.Attribution.Recorded {
		return "attribution source not recorded (the log has no config record naming the databases)."
	}
	var parts []string
	for _, s := range r.Attribution.Sources {
		if used[attributionLabel(s.Kind)] || used[s.Kind] {
			parts = append(parts, sourceText(s))
		}
	}
	if len(parts) == 0 {
		return "the sources that answered are not among those recorded at start."
	}
	return strings.Join(parts, "; ") + "."
}

// attributionLabel maps an asn source kind to what episodes record.
func attributionLabel(kind string) string {
	switch kind {
	case asn.SourceNetworks:
		return "networks file"
	case asn.SourceLocation:
		return "libloc"
	}
	return kind
}

// sourceText names an attribution database: its kind and file, who made
// it, its date and hash.
func sourceText(s AttributionSource) string {
	t := clean(attributionLabel(s.Kind)) + " " + clean(s.Path)
	var about []string
	if s.Vendor != "" {
		about = append(about, clean(s.Vendor))
	}
	if !s.Date.IsZero() {
		about = append(about, "dated "+s.Date.UTC().Format(time.DateOnly))
	}
	if s.SHA256 != "" {
		about = append(about, "sha256 "+clean(s.SHA256))
	}
	if len(about) > 0 {
		t += " (" + strings.Join(about, ", ") + ")"
	}
	return t
}

// span writes a period of time for a subject line.
func span(a, b time.Time) string {
	if a.Format(time.DateOnly) == b.Format(time.DateOnly) {
		return a.Format("2006-01-02 15:04") + "–" + b.Format("15:04") + " UTC"
	}
	return a.Format("2006-01-02 15:04") + " – " + b.Format("2006-01-02 15:04") + " UTC"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// count writes n with thousands separators.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// rate writes a rate per second: whole above 100, else with up to two
// decimals.
func rate(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f < 0:
		return "?"
	case f >= 1e18:
		return strconv.FormatFloat(f, 'g', 3, 64)
	case f >= 100:
		return count(uint64(math.Round(f)))
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
