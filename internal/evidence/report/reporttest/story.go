// Package reporttest writes synthetic evidence logs for the tests of
// package report and of `warden evidence report`: the story of issue 11
// in records, written through evidence.Open and Append as warden serve
// writes them.
package reporttest

import (
	"context"
	"crypto/sha1"
	"fmt"
	"math"
	"slices"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/evidence"
)

// Base is when the story's flood begins.
var Base = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// Abuser is one source of the story as its last record describes it.
type Abuser struct {
	Source, Org, Country, AbuseEmail string
	ASN                              uint32
	Kind                             string
	Total                            uint64
	Peak                             float64
	Buckets                          int // in its final timeline
	Verified                         bool
	ID                               string
	State                            string
}

// Story says what a log written by Write holds.
type Story struct {
	// Abusers are the sources of the period, the heaviest first: a flood
	// from one organisation (and SYNs from a second address of it, still
	// open when the log ends), a slow abuser from another.
	Abusers []Abuser
	// Earlier is a source whose only episode ended the day before the
	// period.
	Earlier Abuser
	// Legit is an address that sent requests like any peer and never
	// formed an episode: no report may name it.
	Legit string
	// Since and Until bound the period around the abusers.
	Since, Until time.Time
	// Revoked is a hash the flood asked for that the log records as
	// revoked, for RevokeReason; Registered one that is registered.
	Revoked, Registered bittorrent.InfoHash
	RevokeReason        string
	// Contact is the tracker.abuse_contact of the config record.
	Contact string
	// LocationSHA256 is the hash the config record gives for the location
	// database.
	LocationSHA256 string
	// Records is how many records the log holds.
	Records int
}

// Hash returns a made-up info hash.
func Hash(name string) bittorrent.InfoHash { return bittorrent.InfoHash(sha1.Sum([]byte(name))) }

// Write writes the story's evidence log into dataDir (which must exist)
// and closes it, signed.
func Write(dataDir string) (Story, error) {
	s := Story{
		Legit:          "192.0.2.50",
		Since:          Base.Add(-time.Hour),
		Until:          Base.Add(2 * time.Hour),
		Revoked:        Hash("revoked: show-07"),
		Registered:     Hash("registered: show-01"),
		RevokeReason:   "withdrawn by the publisher",
		Contact:        "abuse@tracker.example",
		LocationSHA256: "5f1c3b0d8e0f4a1c9e7a2b6d3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60",
	}
	l, err := evidence.Open(dataDir, evidence.DefaultConfig(), nil)
	if err != nil {
		return s, err
	}
	ctx := context.Background()
	add := func(kind evidence.Kind, t time.Time, body any) {
		if err != nil {
			return
		}
		var r evidence.Record
		if r, err = evidence.NewRecord(kind, t, body); err == nil {
			err = l.Append(ctx, r)
			s.Records++
		}
	}

	add(evidence.KindConfig, Base.Add(-90*time.Minute), map[string]any{
		"tracker": map[string]any{"abuse_contact": s.Contact, "mode": "allowlist"},
		"attribution": []map[string]any{
			{"kind": "networks_file", "path": "/etc/warden/networks.tsv", "date": "2026-11-20T08:00:00Z",
				"sha256": "0b7e1f0c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7", "networks": 2},
			{"kind": "location_db", "path": "/usr/share/libloc-location/location.db", "vendor": "IPFire Project",
				"description": "This database has been obtained from https://location.ipfire.org/", "license": "CC",
				"date": "2026-11-30T04:12:00Z", "sha256": s.LocationSHA256, "networks": 1500000},
		},
	})
	add(evidence.KindRegistryAdd, Base.Add(-80*time.Minute), map[string]any{"info_hash": s.Registered, "name": "show-01"})
	add(evidence.KindRegistryAdd, Base.Add(-79*time.Minute), map[string]any{"info_hash": s.Revoked, "name": "show-07"})
	add(evidence.KindRegistryRevoke, Base.Add(-30*time.Minute), map[string]any{"info_hash": s.Revoked, "reason": s.RevokeReason})

	// The day before: an episode outside the period.
	earlier := episodeSpec{
		src: "198.18.7.9", prefix: "198.18.7.0/24", asn: 64496, org: "Yesterday Networks", country: "SE",
		network: "198.18.0.0/15", via: "libloc", kind: evidence.EpisodeRefusals, first: Base.Add(-24 * time.Hour),
		rate: func(int) float64 { return 25 }, secs: 60, verified: true, hashes: []bittorrent.InfoHash{Hash("y1")},
	}
	for _, e := range earlier.records(3) {
		add(evidence.KindEpisode, e.LastSeen.Add(time.Second), e)
	}
	s.Earlier = earlier.abuser()

	// The flood: 8,000 announces a second for unknown hashes, refused.
	flood := episodeSpec{
		src: "198.51.100.7", prefix: "198.51.100.0/24", asn: 64500, org: "Example Transit B.V.", country: "NL",
		network: "198.51.100.0/24", email: "abuse@transit.example", via: "networks file",
		kind: evidence.EpisodeRefusals, first: Base, secs: 180, verified: true,
		rate: func(i int) float64 {
			switch {
			case i < 6:
				return 8000 * float64(i+1) / 6
			case i > 170:
				return 8000 * float64(180-i) / 10
			}
			return 7990 + 10*math.Sin(float64(i)/3)
		},
		hashes: []bittorrent.InfoHash{Hash("a1"), Hash("a2"), s.Revoked, Hash("a3"), Hash("a4")},
		peerID: "-qB4520-", client: "qBittorrent 4.5.2", port: 6881,
		actions: func(total uint64) evidence.Actions { return evidence.Actions{Refused: total * 99 / 100} },
	}
	// SYNs from a second address of the same network, still open.
	syn := episodeSpec{
		src: "198.51.100.99", prefix: "198.51.100.0/24", asn: 64500, org: "Example Transit B.V.", country: "NL",
		network: "198.51.100.0/24", email: "abuse@transit.example", via: "networks file",
		kind: evidence.EpisodeSYN, first: Base.Add(40 * time.Second), secs: 25, open: true,
		rate: func(i int) float64 { return 3000 + 200*float64(i%3) },
	}
	// The slow abuser: about 40 announces a second over HTTP, for 20 minutes.
	slow := episodeSpec{
		src: "203.0.113.9", prefix: "203.0.113.0/24", asn: 64511, org: "Slow Hosting GmbH", country: "DE",
		network: "203.0.113.0/24", via: "libloc", kind: evidence.EpisodeRate, first: Base.Add(20 * time.Second),
		secs: 1200, verified: true, http: true,
		rate:   func(i int) float64 { return 40 + float64(i%5) - 2 },
		hashes: []bittorrent.InfoHash{Hash("b1"), s.Revoked, s.Registered},
		ua:     "Transmission/3.00", peerID: "-TR3000-", client: "Transmission 3.00", port: 51413,
		actions: func(total uint64) evidence.Actions {
			return evidence.Actions{Refused: total * 2 / 3, Limited: total / 3}
		},
	}
	// Records arrive in time order, as the aggregator writes them.
	fr, sr, wr := flood.records(4), syn.records(2), slow.records(5)
	var all []evidence.Episode
	all = append(append(append(all, fr...), sr...), wr...)
	slices.SortStableFunc(all, func(a, b evidence.Episode) int { return a.LastSeen.Compare(b.LastSeen) })
	for _, e := range all {
		add(evidence.KindEpisode, e.LastSeen.Add(time.Second), e)
	}
	add(evidence.KindBan, Base.Add(3*time.Minute), map[string]any{"source": flood.src, "reason": "episode " + flood.id()})
	s.Abusers = []Abuser{flood.abuser(), syn.abuser(), slow.abuser()}
	if err != nil {
		l.Close()
		return s, fmt.Errorf("write story: %w", err)
	}
	if err := l.Close(); err != nil {
		return s, err
	}
	return s, nil
}

// episodeSpec describes one source's episode second by second.
type episodeSpec struct {
	src, prefix, org, country, network, email, via string
	asn                                            uint32
	kind                                           string
	first                                          time.Time
	secs                                           int
	rate                                           func(sec int) float64
	verified, http, open                           bool
	hashes                                         []bittorrent.InfoHash
	ua, peerID, client                             string
	port                                           uint16
	actions                                        func(total uint64) evidence.Actions
}

func (e *episodeSpec) id() string { return fmt.Sprintf("E-%d-%s", e.first.Unix(), e.src) }

// maxBuckets is the aggregator's bound on a timeline.
const maxBuckets = 600

// at returns the episode as it stood after sec seconds.
func (e *episodeSpec) at(sec int, state, event string) evidence.Episode {
	perSec := make([]uint64, sec)
	var total uint64
	peak := 0.0
	for i := range perSec {
		perSec[i] = uint64(math.Round(e.rate(i)))
		total += perSec[i]
		peak = max(peak, float64(perSec[i]))
	}
	bucket := 1
	for sec > maxBuckets*bucket {
		bucket *= 2
	}
	counts := make([]uint64, (sec+bucket-1)/bucket)
	for i, n := range perSec {
		counts[i/bucket] += n
	}
	last := e.first.Add(time.Duration(sec-1) * time.Second)
	ep := evidence.Episode{
		ID: e.id(), State: state, Source: e.src, Prefix: e.prefix, Kind: e.kind,
		FirstSeen: e.first, LastSeen: last, Total: total, PeakPerSec: peak,
		MeanPerSec: math.Round(float64(total)/float64(sec)*1000) / 1000,
		Timeline:   evidence.Timeline{Start: e.first, BucketSeconds: int64(bucket), Counts: counts},
		Hashes:     []evidence.HashCount{}, Clients: []evidence.ClientCount{}, UserAgents: []evidence.ValueCount{}, Ports: []evidence.PortCount{},
		ASN: e.asn, Org: e.org, Country: e.country, Network: e.network, AbuseEmail: e.email, AttributionSource: e.via,
		Event: event, Opened: e.first, Reason: e.kind + " over threshold",
	}
	switch {
	case e.kind == evidence.EpisodeSYN:
		ep.Requests.SYN.Spoofable = total
	case e.http:
		ep.Requests.Announce.Verified = total
	default:
		ep.Requests.Connect.Spoofable = total / 100
		ep.Requests.Announce.Verified = total - total/100
	}
	v, sp := uint64(0), uint64(0)
	for _, c := range []evidence.Count{ep.Requests.Connect, ep.Requests.Announce, ep.Requests.SYN} {
		v += c.Verified
		sp += c.Spoofable
	}
	ep.Verified = v > sp
	for i, h := range e.hashes {
		ep.Hashes = append(ep.Hashes, evidence.HashCount{InfoHash: h, Count: total / uint64(len(e.hashes)+i) / 4, Registered: h == Hash("registered: show-01")})
	}
	if len(e.hashes) > 0 {
		ep.HashesSeen = uint64(len(e.hashes)) * 247
		for _, h := range ep.Hashes {
			if h.Registered {
				ep.HashesRegistered++
			}
		}
	}
	if e.peerID != "" {
		ep.Clients = append(ep.Clients, evidence.ClientCount{PeerID: e.peerID, Client: e.client, Count: total / 2})
	}
	if e.ua != "" {
		ep.UserAgents = append(ep.UserAgents, evidence.ValueCount{Value: e.ua, Count: total})
	}
	if e.port != 0 {
		ep.Ports = append(ep.Ports, evidence.PortCount{Port: e.port, Count: total / 2})
	}
	if e.actions != nil {
		ep.Actions = e.actions(total)
	}
	return ep
}

// records returns n records of the episode, the last its final state:
// opened after one second, then at even steps.
func (e *episodeSpec) records(n int) []evidence.Episode {
	out := []evidence.Episode{e.at(1, evidence.EpisodeOpen, evidence.EventOpened)}
	for i := 1; i < n; i++ {
		sec := max(2, e.secs*i/(n-1))
		state, event := evidence.EpisodeOpen, evidence.EventUpdated
		if i == n-1 && !e.open {
			state, event = evidence.EpisodeClosed, evidence.EventClosed
		}
		out = append(out, e.at(sec, state, event))
	}
	return out
}

func (e *episodeSpec) abuser() Abuser {
	last := e.at(e.secs, "", "")
	state := evidence.EpisodeClosed
	if e.open {
		state = evidence.EpisodeOpen
	}
	return Abuser{Source: e.src, Org: e.org, Country: e.country, AbuseEmail: e.email, ASN: e.asn, Kind: e.kind,
		Total: last.Total, Peak: last.PeakPerSec, Buckets: len(last.Timeline.Counts), Verified: last.Verified,
		ID: e.id(), State: state}
}
