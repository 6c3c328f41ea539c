package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/BurntSushi/toml"

	"warden/internal/admin"
	"warden/internal/dashboard"
	"warden/internal/evidence"
	"warden/internal/reqstat"
)

// newDashboard builds the live pages of the admin listener. The evidence
// parts are opened after the admin listener, so attribution and the
// checkpoint are looked up when asked, not captured here.
func (s *server) newDashboard(token admin.Token) (*dashboard.Dashboard, error) {
	cfg := s.cfg
	cfg.Alerts.WebhookURL = redactURL(cfg.Alerts.WebhookURL)
	var text strings.Builder
	fmt.Fprintf(&text, "# warden %s\n", versionString())
	if err := toml.NewEncoder(&text).Encode(cfg); err != nil {
		return nil, fmt.Errorf("admin: configuration for the dashboard: %w", err)
	}
	d, err := dashboard.New(dashboard.Deps{
		CheckToken: token.Matches,
		Requests:   s.requestTotals,
		Knocks:     s.knocks,
		Guard:      s.guard,
		Org:        s.orgOf,
		Config:     text.String(),
		Checkpoint: s.checkpoint,
	}, s.log)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return d, nil
}

// redactURL keeps a webhook URL's scheme and host: its path and query
// often carry the receiver's secret.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if raw == "" || err != nil {
		return raw
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return raw
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}

// orgOf names the organisation of a, as the attribution database knows
// it: "AS64500 Example Net", or "" without evidence or an answer.
func (s *server) orgOf(a netip.Addr) string {
	if s.ev == nil || s.ev.attrib == nil {
		return ""
	}
	info, ok := s.ev.attrib.Lookup(a)
	if !ok {
		return ""
	}
	switch {
	case info.ASN != 0 && info.Org != "":
		return fmt.Sprintf("AS%d %s", info.ASN, info.Org)
	case info.ASN != 0:
		return fmt.Sprintf("AS%d", info.ASN)
	}
	return info.Org
}

// requestTotals sums the frontends' requests by outcome, from the same
// per-worker counters as /stats and /metrics, without the rest of the
// status snapshot (no swarm shard locks), for the dashboard's sampler.
func (s *server) requestTotals() [reqstat.NumOutcomes]uint64 {
	var t reqstat.Table
	if s.udp != nil {
		u := s.udp.Stats()
		t.Add(&u.Requests)
	}
	if s.http != nil {
		h := s.http.Stats()
		t.Add(&h.Requests)
	}
	return t.ByOutcome()
}

var errEvidenceOff = errors.New("evidence is off (evidence.enabled = false)")

// checkpoint returns the evidence log's latest checkpoint.
func (s *server) checkpoint(ctx context.Context) (evidence.Checkpoint, error) {
	if s.ev == nil || s.ev.log == nil {
		return evidence.Checkpoint{}, errEvidenceOff
	}
	return s.ev.log.Checkpoint(ctx)
}
