package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/evidence"
)

// topHashes is how many info hashes the report lists.
const topHashes = 20

// maxProblems bounds the problems a report lists one by one.
const maxProblems = 100

// builder takes records in log order and keeps what the report needs:
// the last record of each episode of the period, the config records that
// say who reports and what attributed, and the revocations.
type builder struct {
	opts Options

	eps       map[string]*kept // by episode ID
	keptBytes int
	maxKept   int // maxKeptBytes; tests lower it

	configBefore *configBody  // the last config record before the period
	configs      []configBody // those in the period

	revoked         map[bittorrent.InfoHash]revocation
	revokedOverflow int64

	ops      map[string]int64
	counts   RecordCounts
	problems []string
	dropped  int // problems beyond maxProblems
}

type kept struct {
	index  int64
	logged time.Time
	body   []byte
}

type revocation struct {
	reason string
	at     time.Time
}

// configBody is what a report reads of a config record: the reporter's
// contact and the attribution databases (nil when the record does not
// say).
type configBody struct {
	AbuseContact string
	Attribution  *[]AttributionSource
}

// parseConfig reads a config record's body. The fields may sit at the
// top ({"tracker":{"abuse_contact":…},"attribution":[…]}) or under
// "config", as serve writes its whole configuration; keys match as
// encoding/json matches them, and also without underscores, so
// "AbuseContact" (a Go struct marshalled without tags) reads as
// "abuse_contact".
func parseConfig(body []byte) (configBody, error) {
	var c configBody
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return c, err
	}
	levels := []map[string]json.RawMessage{top}
	if raw, ok := field(top, "config"); ok {
		var inner map[string]json.RawMessage
		if err := json.Unmarshal(raw, &inner); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		levels = append(levels, inner)
	}
	for _, m := range levels {
		if raw, ok := field(m, "tracker"); ok && c.AbuseContact == "" {
			var tr map[string]json.RawMessage
			if err := json.Unmarshal(raw, &tr); err != nil {
				return c, fmt.Errorf("tracker: %w", err)
			}
			if raw, ok := field(tr, "abuse_contact"); ok {
				if err := json.Unmarshal(raw, &c.AbuseContact); err != nil {
					return c, fmt.Errorf("tracker.abuse_contact: %w", err)
				}
			}
		}
		if raw, ok := field(m, "attribution"); ok && c.Attribution == nil {
			var srcs []AttributionSource
			if err := json.Unmarshal(raw, &srcs); err != nil {
				return c, fmt.Errorf("attribution: %w", err)
			}
			c.Attribution = &srcs
		}
	}
	return c, nil
}

// field finds key in m as encoding/json would (exactly, else ignoring
// case), or with underscores ignored.
func field(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	want := norm(key)
	for k, v := range m {
		if norm(k) == want {
			return v, true
		}
	}
	return nil, false
}

func newBuilder(opts Options) *builder {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Top <= 0 {
		opts.Top = DefaultTop
	}
	return &builder{
		opts:    opts,
		maxKept: maxKeptBytes,
		eps:     map[string]*kept{},
		revoked: map[bittorrent.InfoHash]revocation{},
		ops:     map[string]int64{},
	}
}

func (b *builder) problem(format string, args ...any) {
	if len(b.problems) >= maxProblems {
		b.dropped++
		return
	}
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// overlaps reports whether [first, last] meets the period.
func (b *builder) overlaps(first, last time.Time) bool {
	if !b.opts.Since.IsZero() && last.Before(b.opts.Since) {
		return false
	}
	if !b.opts.Until.IsZero() && first.After(b.opts.Until) {
		return false
	}
	return true
}

// inPeriod reports whether t is in the period.
func (b *builder) inPeriod(t time.Time) bool { return b.overlaps(t, t) }

// add takes one record. Records must come in index order, as a log or
// bundle holds them. A record it cannot use is listed in the report's
// problems; only ErrTooLarge stops it.
func (b *builder) add(e evidence.BundleEntry) error {
	b.counts.Read++
	switch e.Kind {
	case evidence.KindEpisode:
		return b.addEpisode(e)
	case evidence.KindConfig:
		c, err := parseConfig(e.Body)
		if err != nil {
			b.problem("record %d (config): %v", e.Index, err)
			return nil
		}
		switch {
		case !b.opts.Until.IsZero() && e.Time.After(b.opts.Until):
		case !b.opts.Since.IsZero() && e.Time.Before(b.opts.Since):
			b.configBefore = &c
		default:
			b.configs = append(b.configs, c)
		}
	case evidence.KindRegistryRevoke, evidence.KindRegistryRestore:
		var r struct {
			InfoHash bittorrent.InfoHash `json:"info_hash"`
			Reason   string              `json:"reason"`
		}
		if err := json.Unmarshal(e.Body, &r); err != nil || r.InfoHash.IsZero() {
			b.problem("record %d (%s): no info_hash of 40 hex digits (%v)", e.Index, e.Kind, err)
			break
		}
		if e.Kind == evidence.KindRegistryRestore {
			delete(b.revoked, r.InfoHash)
		} else if _, ok := b.revoked[r.InfoHash]; ok || len(b.revoked) < maxRevoked {
			b.revoked[r.InfoHash] = revocation{reason: r.Reason, at: e.Time}
		} else {
			b.revokedOverflow++
		}
	}
	if e.Kind != evidence.KindEpisode && b.inPeriod(e.Time) {
		b.ops[string(e.Kind)]++
	}
	return nil
}

func (b *builder) addEpisode(e evidence.BundleEntry) error {
	b.counts.Episodes++
	var ep struct {
		ID        string    `json:"id"`
		FirstSeen time.Time `json:"first_seen"`
		LastSeen  time.Time `json:"last_seen"`
	}
	if err := json.Unmarshal(e.Body, &ep); err != nil || ep.ID == "" {
		if err == nil {
			err = fmt.Errorf("no id")
		}
		b.problem("record %d (episode): %v", e.Index, err)
		return nil
	}
	old := b.eps[ep.ID]
	if old != nil && old.index > e.Index {
		return nil // handed out of order: the later record stands
	}
	if !b.overlaps(ep.FirstSeen, ep.LastSeen) {
		if old != nil { // its last record decides
			b.keptBytes -= len(old.body)
			delete(b.eps, ep.ID)
		}
		return nil
	}
	if old != nil {
		b.keptBytes -= len(old.body)
	}
	body := slices.Clone(e.Body)
	b.eps[ep.ID] = &kept{index: e.Index, logged: e.Logged, body: body}
	b.keptBytes += len(body)
	if b.keptBytes > b.maxKept {
		return &tooLargeError{index: e.Index}
	}
	return nil
}

// finish builds the report from what was kept.
func (b *builder) finish(cp evidence.Checkpoint, key string, unsigned, pruned int64) *Report {
	r := &Report{
		Format:          Format,
		Generated:       b.opts.Now.UTC().Round(0),
		Episodes:        []Episode{},
		Sources:         []Source{},
		Organisations:   []Organisation{},
		Hashes:          []Hash{},
		OperatorActions: b.ops,
		Problems:        []string{},
		chartTop:        b.opts.Top,
	}
	if !b.opts.Since.IsZero() {
		t := b.opts.Since.UTC()
		r.Period.Since = &t
	}
	if !b.opts.Until.IsZero() {
		t := b.opts.Until.UTC()
		r.Period.Until = &t
	}
	r.Checkpoint = CheckpointInfo{Seq: cp.Seq, Size: cp.Size, Time: cp.Time.UTC(), Note: string(cp.Note), Key: key,
		HowToVerify: "Save the checkpoint to a file, cp.txt. On the data directory, \"warden evidence verify --data DIR --checkpoint cp.txt --key KEY\" " +
			"proves that the log still holds every record the checkpoint covers, unchanged. \"warden evidence export\" writes records " +
			"with their inclusion proofs, which \"warden evidence verify --bundle FILE --key KEY\" checks with nothing else."}
	r.Records = b.counts
	r.Records.Unsigned, r.Records.Pruned = unsigned, pruned

	for id, k := range b.eps {
		ep, err := episodeFrom(k)
		if err != nil {
			b.problem("record %d (episode %s): %v", k.index, id, err)
			continue
		}
		for _, p := range ep.check() {
			b.problem("record %d (episode %s): %s", k.index, id, p)
		}
		for i := range ep.Hashes {
			if rv, ok := b.revoked[ep.Hashes[i].InfoHash]; ok {
				ep.Hashes[i].Revoked, ep.Hashes[i].Reason = true, rv.reason
			}
		}
		r.Episodes = append(r.Episodes, ep)
	}
	slices.SortFunc(r.Episodes, func(a, b Episode) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), a.FirstSeen.Compare(b.FirstSeen), strings.Compare(a.ID, b.ID))
	})
	for i, ep := range r.Episodes {
		if i == 0 || ep.FirstSeen.Before(r.Period.FirstSeen) {
			r.Period.FirstSeen = ep.FirstSeen
		}
		if ep.LastSeen.After(r.Period.LastSeen) {
			r.Period.LastSeen = ep.LastSeen
		}
		addActions(&r.Actions, ep.Actions)
	}
	r.Sources = sources(r.Episodes)
	r.Hashes = hashes(r.Episodes)
	r.Reporter = b.reporter()
	r.Attribution = b.attribution()
	r.Organisations = organisations(r)

	if b.revokedOverflow > 0 {
		b.problem("%d revocations beyond the first %d were not matched against the hashes asked for", b.revokedOverflow, maxRevoked)
	}
	if unsigned > 0 {
		b.problem("%d records newer than checkpoint %d are not signed yet and are not in this report", unsigned, cp.Seq)
	}
	if pruned > 0 {
		b.problem("%d records were pruned (older than evidence.retention) and are not in this report", pruned)
	}
	if b.dropped > 0 {
		b.problems = append(b.problems, fmt.Sprintf("and %d more problems", b.dropped))
	}
	r.Problems = append(r.Problems, b.problems...)
	return r
}

// episodeFrom decodes a kept record into the report's episode.
func episodeFrom(k *kept) (Episode, error) {
	var e evidence.Episode
	if err := json.Unmarshal(k.body, &e); err != nil {
		return Episode{}, err
	}
	ep := Episode{
		ID: e.ID, State: e.State, Source: e.Source, Prefix: e.Prefix, Kind: e.Kind,
		FirstSeen: e.FirstSeen.UTC(), LastSeen: e.LastSeen.UTC(),
		Requests: e.Total, RequestsByKind: e.Requests, Verified: e.Verified,
		PeakPerSec: e.PeakPerSec, MeanPerSec: e.MeanPerSec,
		ASN: e.ASN, Org: e.Org, Country: e.Country, Network: e.Network, AbuseEmail: e.AbuseEmail,
		AttributionSource: e.AttributionSource,
		Hashes:            make([]Hash, 0, len(e.Hashes)),
		HashesSeen:        e.HashesSeen, HashesRegistered: e.HashesRegistered,
		Clients: nonNil(e.Clients), UserAgents: nonNil(e.UserAgents), Ports: nonNil(e.Ports),
		Actions: e.Actions, Timeline: e.Timeline,
		Record: k.index, Logged: k.logged.UTC(), body: k.body,
	}
	ep.Timeline.Counts = nonNil(ep.Timeline.Counts)
	for _, h := range e.Hashes {
		ep.Hashes = append(ep.Hashes, Hash{InfoHash: h.InfoHash, Count: h.Count, Registered: h.Registered})
	}
	return ep, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// check lists what is wrong with an episode as recorded. The report still
// shows it; the chart leaves out a timeline it cannot draw.
func (ep *Episode) check() []string {
	var ps []string
	if ep.Source == "" {
		ps = append(ps, "no source")
	}
	if ep.FirstSeen.IsZero() || ep.LastSeen.Before(ep.FirstSeen) {
		ps = append(ps, fmt.Sprintf("first_seen %s and last_seen %s are not in order", ep.FirstSeen.Format(time.RFC3339), ep.LastSeen.Format(time.RFC3339)))
	}
	if !ep.drawable() && len(ep.Timeline.Counts) > 0 {
		ps = append(ps, fmt.Sprintf("timeline with bucket_seconds %d and start %s cannot be drawn", ep.Timeline.BucketSeconds, ep.Timeline.Start.Format(time.RFC3339)))
	}
	return ps
}

// maxTimelineSeconds bounds the span of a timeline a chart draws: far
// more than any episode lasts, and within what time.Duration holds.
const maxTimelineSeconds = 50 * 366 * 24 * 3600

// drawable reports whether the timeline can be charted: it has buckets
// of at least a second, starts between 1970 and 2200 and spans at most
// 50 years.
func (ep *Episode) drawable() bool {
	t := ep.Timeline
	return len(t.Counts) > 0 && t.BucketSeconds >= 1 &&
		float64(len(t.Counts))*float64(t.BucketSeconds) <= maxTimelineSeconds &&
		t.Start.Year() >= 1970 && t.Start.Year() < 2200
}

// duration is the episode's length as the mean rate counts it.
func (ep *Episode) duration() time.Duration {
	d := ep.LastSeen.Sub(ep.FirstSeen)
	if d < 0 {
		d = 0
	}
	return d + time.Second
}

func addActions(dst *evidence.Actions, a evidence.Actions) {
	dst.Refused += a.Refused
	dst.Limited += a.Limited
	dst.Banned += a.Banned
	dst.KernelDropped += a.KernelDropped
	dst.Blocked += a.Blocked
}

// split sums an episode's requests by whether the source proved its
// address.
func split(r evidence.Requests) (verified, spoofable uint64) {
	for _, c := range []evidence.Count{r.Connect, r.Announce, r.Scrape, r.Garbage, r.ForgedCookie, r.SYN, r.KernelDropped, r.HTTP} {
		verified += c.Verified
		spoofable += c.Spoofable
	}
	return verified, spoofable
}

func sources(eps []Episode) []Source {
	byName := map[string]*Source{}
	var durs = map[string]time.Duration{}
	var order []string
	for _, ep := range eps {
		s := byName[ep.Source]
		if s == nil {
			s = &Source{Source: ep.Source, Prefix: ep.Prefix, ASN: ep.ASN, Org: ep.Org, Country: ep.Country,
				FirstSeen: ep.FirstSeen, LastSeen: ep.LastSeen, Kinds: []string{}}
			byName[ep.Source] = s
			order = append(order, ep.Source)
		}
		s.Episodes++
		if !slices.Contains(s.Kinds, ep.Kind) {
			s.Kinds = append(s.Kinds, ep.Kind)
		}
		s.Requests += ep.Requests
		v, sp := split(ep.RequestsByKind)
		s.VerifiedRequests += v
		s.SpoofableRequests += sp
		s.PeakPerSec = max(s.PeakPerSec, ep.PeakPerSec)
		if ep.FirstSeen.Before(s.FirstSeen) {
			s.FirstSeen = ep.FirstSeen
		}
		if ep.LastSeen.After(s.LastSeen) {
			s.LastSeen = ep.LastSeen
		}
		addActions(&s.Actions, ep.Actions)
		durs[ep.Source] += ep.duration()
	}
	out := make([]Source, 0, len(order))
	for _, name := range order {
		s := byName[name]
		slices.Sort(s.Kinds)
		s.Verified = s.VerifiedRequests > s.SpoofableRequests
		s.MeanPerSec = roundRate(float64(s.Requests) / durs[name].Seconds())
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Source) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.Source, b.Source))
	})
	return out
}

func roundRate(f float64) float64 {
	if f >= 1e15 {
		return f
	}
	return float64(int64(f*1000+0.5)) / 1000
}

func hashes(eps []Episode) []Hash {
	type agg struct {
		Hash
		srcs map[string]bool
	}
	m := map[bittorrent.InfoHash]*agg{}
	for _, ep := range eps {
		for _, h := range ep.Hashes {
			a := m[h.InfoHash]
			if a == nil {
				a = &agg{Hash: h, srcs: map[string]bool{}}
				a.Count = 0
				m[h.InfoHash] = a
			}
			a.Count += h.Count
			a.Registered = a.Registered || h.Registered
			a.srcs[ep.Source] = true
		}
	}
	out := make([]Hash, 0, len(m))
	for _, a := range m {
		a.Sources = len(a.srcs)
		out = append(out, a.Hash)
	}
	slices.SortFunc(out, func(a, b Hash) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.InfoHash.String(), b.InfoHash.String()))
	})
	return out[:min(len(out), topHashes)]
}

// reporter says who sends the report: the option, else the abuse contact
// of the latest config record of the period.
func (b *builder) reporter() Reporter {
	var r Reporter
	switch {
	case b.opts.Contact != "":
		r.Contact, r.From = b.opts.Contact, "option"
	default:
		if c := b.lastConfig(); c != nil && c.AbuseContact != "" {
			r.Contact, r.From = c.AbuseContact, "tracker.abuse_contact"
		}
	}
	r.Email = emailOf(r.Contact)
	r.Org = b.opts.Org
	if r.Org == "" {
		if _, domain, ok := strings.Cut(r.Email, "@"); ok {
			r.Org = domain
		} else if u, err := url.Parse(r.Contact); err == nil && u.Hostname() != "" {
			r.Org = u.Hostname()
		}
	}
	return r
}

// emailOf returns the address of a contact that is an email address
// ("abuse@example.org", "mailto:…", "Name <…>"), or "".
func emailOf(contact string) string {
	s := strings.TrimPrefix(strings.TrimSpace(contact), "mailto:")
	a, err := mail.ParseAddress(s)
	if err != nil || !strings.Contains(a.Address, "@") {
		return ""
	}
	return a.Address
}

func (b *builder) lastConfig() *configBody {
	if n := len(b.configs); n > 0 {
		return &b.configs[n-1]
	}
	return b.configBefore
}

// attribution lists the databases of the run in force when the period
// began and of every run that started in it.
func (b *builder) attribution() AttributionInfo {
	info := AttributionInfo{Sources: []AttributionSource{}}
	cs := b.configs
	if b.configBefore != nil {
		cs = append([]configBody{*b.configBefore}, cs...)
	}
	seen := map[AttributionSource]bool{}
	for _, c := range cs {
		if c.Attribution == nil {
			continue
		}
		info.Recorded = true
		for _, s := range *c.Attribution {
			if !seen[s] {
				seen[s] = true
				info.Sources = append(info.Sources, s)
			}
		}
	}
	return info
}

type orgKey struct {
	asn        uint32
	org, email string
}

func organisations(r *Report) []Organisation {
	m := map[orgKey]*Organisation{}
	var keys []orgKey
	for _, ep := range r.Episodes {
		k := orgKey{ep.ASN, ep.Org, ep.AbuseEmail}
		o := m[k]
		if o == nil {
			o = &Organisation{ASN: ep.ASN, Org: ep.Org, AbuseEmail: ep.AbuseEmail, Networks: []string{}, Sources: []string{},
				FirstSeen: ep.FirstSeen, LastSeen: ep.LastSeen, XARF: []XARF{}}
			m[k] = o
			keys = append(keys, k)
		}
		if o.Country == "" {
			o.Country = ep.Country
		}
		if ep.Network != "" && !slices.Contains(o.Networks, ep.Network) {
			o.Networks = append(o.Networks, ep.Network)
		}
		if !slices.Contains(o.Sources, ep.Source) {
			o.Sources = append(o.Sources, ep.Source)
		}
		o.Episodes++
		o.Requests += ep.Requests
		o.PeakPerSec = max(o.PeakPerSec, ep.PeakPerSec)
		if ep.FirstSeen.Before(o.FirstSeen) {
			o.FirstSeen = ep.FirstSeen
		}
		if ep.LastSeen.After(o.LastSeen) {
			o.LastSeen = ep.LastSeen
		}
		addActions(&o.Actions, ep.Actions)
	}
	out := make([]Organisation, 0, len(keys))
	for _, k := range keys {
		o := m[k]
		slices.Sort(o.Networks)
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b Organisation) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), cmp.Compare(a.ASN, b.ASN), strings.Compare(a.Org, b.Org))
	})
	for i := range out {
		o := &out[i]
		eps := r.episodesOf(o)
		o.Notice = notice(r, o, eps)
		o.XARF, o.XARFProblem = xarfReports(r, eps)
	}
	return out
}

// episodesOf returns the episodes of organisation o, in the report's
// order.
func (r *Report) episodesOf(o *Organisation) []*Episode {
	var eps []*Episode
	for i := range r.Episodes {
		ep := &r.Episodes[i]
		if ep.ASN == o.ASN && ep.Org == o.Org && ep.AbuseEmail == o.AbuseEmail {
			eps = append(eps, ep)
		}
	}
	return eps
}

// orgName names an organisation for people.
func orgName(asn uint32, org string) string {
	switch {
	case asn != 0 && org != "":
		return fmt.Sprintf("AS%d %s", asn, org)
	case asn != 0:
		return fmt.Sprintf("AS%d", asn)
	case org != "":
		return org
	}
	return "unattributed"
}
