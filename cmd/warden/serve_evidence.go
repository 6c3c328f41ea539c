package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"warden/internal/admin"
	"warden/internal/asn"
	"warden/internal/evidence"
	"warden/internal/httptracker"
	"warden/internal/ratelog"
	"warden/internal/status"
	"warden/internal/udptracker"
)

// evidenceParts are the parts of warden serve that keep the operator's
// record: the evidence log (DATA/evidence.db), the attribution database,
// the episode aggregator the frontends report to, and the webhook.
type evidenceParts struct {
	log      *evidence.Log
	attrib   *asn.DB
	episodes *evidence.Episodes
	alerts   *evidence.Webhook // nil without alerts.webhook_url
	errLog   *ratelog.Logger
}

// openEvidence opens the evidence log and builds the episodes, after the
// registry and the guard (the episodes read both) and before the
// listeners are connected to it (connectEvidence). It records the
// configuration at start.
func (s *server) openEvidence() error {
	cfg := s.cfg.Evidence
	if !cfg.Enabled {
		return nil
	}
	ev := &evidenceParts{errLog: ratelog.New(s.log, slog.LevelError, time.Minute, nil)}
	s.ev = ev
	var err error
	if ev.log, err = evidence.Open(s.cfg.Data, cfg.Config, s.log); err != nil {
		return fmt.Errorf("evidence log: %w", err)
	}
	if ev.attrib, err = asn.Open(cfg.ASNOptions()); err != nil {
		return fmt.Errorf("evidence: attribution: %w", err)
	}
	for _, src := range ev.attrib.Sources() {
		s.log.Info("evidence: attribution source", "source", src)
	}
	ecfg := cfg.EpisodeConfig.WithGuardRates(s.cfg.Limit.RatePerSec, s.cfg.Limit.PrefixRatePerSec)
	if s.cfg.Alerts.WebhookURL != "" {
		if ev.alerts, err = evidence.NewWebhook(s.cfg.Alerts, ev.log, s.adminBase(), s.log); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
	}
	deps := evidence.EpisodeDeps{
		Log:         ev.log,
		Attribution: ev.attrib,
		Registered:  s.reg.Tracked,
		Logger:      s.log,
	}
	if ev.alerts != nil {
		deps.Alerts = ev.alerts
	}
	if ev.episodes, err = evidence.NewEpisodes(ecfg, deps); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	s.record(context.Background(), evidence.KindConfig, configRecord{Version: versionString(), Config: s.cfg, Attribution: ev.attrib.Sources()})
	return nil
}

// configRecord is the body of the record of the configuration at start,
// with the attribution databases in force, which reports name. Secrets
// print redacted.
type configRecord struct {
	Version     string           `json:"version"`
	Config      any              `json:"config"`
	Attribution []asn.SourceInfo `json:"attribution"`
}

// adminBase is the admin API's URL, for the links in alerts; "" when the
// API is off (alerts then carry the path alone).
func (s *server) adminBase() string {
	if s.admin != nil {
		return "http://" + s.admin.Addr().String()
	}
	if s.cfg.Admin.Listen == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s.cfg.Admin.Listen)
	if err != nil {
		return ""
	}
	return "http://" + net.JoinHostPort(host, port)
}

// connectEvidence makes the frontends report every request to the
// episodes.
func (s *server) connectEvidence() {
	if s.ev == nil {
		return
	}
	if s.udp != nil {
		s.udp.ReportKnocks(udpKnocks{s.ev.episodes})
	}
	if s.http != nil {
		s.http.ReportKnocks(httpKnocks{s.ev.episodes})
	}
}

// evidenceRunners are the evidence parts' loops, for the errgroup.
func (s *server) evidenceRunners() []func(context.Context) error {
	if s.ev == nil {
		return nil
	}
	rs := []func(context.Context) error{s.ev.log.Run, s.ev.episodes.Run}
	if s.ev.alerts != nil {
		rs = append(rs, s.ev.alerts.Run)
	}
	return rs
}

// closeEvidence closes the log (writing what is queued and signing a last
// checkpoint) and the attribution database. The episodes wrote their
// closing records when their Run returned.
func (s *server) closeEvidence() {
	if s.ev == nil {
		return
	}
	if s.ev.log != nil {
		if err := s.ev.log.Close(); err != nil {
			s.log.Error("evidence log", "err", err)
		}
	}
	if s.ev.attrib != nil {
		s.ev.attrib.Close()
	}
}

// record appends an operator action (or the configuration) to the log.
// It never blocks: the log queues it.
func (s *server) record(ctx context.Context, kind evidence.Kind, body any) {
	if s.ev == nil {
		return
	}
	rec, err := evidence.NewRecord(kind, time.Now(), body)
	if err == nil {
		err = s.ev.log.Append(ctx, rec)
	}
	if err != nil {
		s.ev.errLog.Log("evidence record not written", slog.String("kind", string(kind)), slog.Any("err", err))
	}
}

// Record implements admin.Recorder.
func (s *server) Record(ctx context.Context, kind evidence.Kind, body any) {
	s.record(context.WithoutCancel(ctx), kind, body)
}

// evidenceStatus fills the evidence parts of /stats.
func (s *server) evidenceStatus(st *status.Snapshot) {
	if s.ev == nil {
		return
	}
	es := s.ev.episodes.Stats()
	eps := &status.Episodes{EpisodeStats: es, Open: []status.OpenEpisode{}}
	open := s.ev.episodes.Open()
	slices.SortStableFunc(open, func(a, b *evidence.Episode) int {
		switch {
		case a.PeakPerSec > b.PeakPerSec:
			return -1
		case a.PeakPerSec < b.PeakPerSec:
			return 1
		}
		return 0
	})
	for _, ep := range open[:min(len(open), statusEpisodes)] {
		eps.Open = append(eps.Open, status.OpenEpisode{
			ID: ep.ID, Source: ep.Source, Kind: ep.Kind, Org: ep.Org, FirstSeen: ep.FirstSeen, LastSeen: ep.LastSeen,
			Total: ep.Total, PeakPerSec: ep.PeakPerSec, Verified: ep.Verified,
		})
	}
	st.Episodes = eps
	ls := s.ev.log.Stats()
	st.Evidence = &ls
	if s.ev.alerts != nil {
		as := s.ev.alerts.Stats()
		st.Alerts = &as
	}
}

// statusEpisodes is how many open episodes /stats lists.
const statusEpisodes = 10

// udpKnocks reports the UDP frontend's datagrams to the episodes.
type udpKnocks struct{ e *evidence.Episodes }

var udpKinds = [...]evidence.ReqKind{
	udptracker.EventConnect:      evidence.ReqConnect,
	udptracker.EventAnnounce:     evidence.ReqAnnounce,
	udptracker.EventScrape:       evidence.ReqScrape,
	udptracker.EventGarbage:      evidence.ReqGarbage,
	udptracker.EventForgedCookie: evidence.ReqForgedCookie,
}

var udpActions = [...]evidence.Action{
	udptracker.Answered: evidence.ActServed,
	udptracker.Refused:  evidence.ActRefused,
	udptracker.Limited:  evidence.ActLimited,
	udptracker.Banned:   evidence.ActBanned,
	udptracker.Blocked:  evidence.ActBlocked,
}

// Datagram implements udptracker.Sink.
func (u udpKnocks) Datagram(ev udptracker.Event) {
	if int(ev.Kind) >= len(udpKinds) || int(ev.Outcome) >= len(udpActions) {
		return
	}
	k := evidence.Knock{
		Src: ev.Src, Kind: udpKinds[ev.Kind], Verified: ev.Verified, Action: udpActions[ev.Outcome],
		Hashes: ev.Hashes, PeerID: ev.PeerID, HasPeerID: ev.HasPeerID, Port: ev.Port,
	}
	u.e.Knock(&k, ev.Now)
}

// httpKnocks reports the HTTP frontend's requests to the episodes. Every
// one completed a TCP handshake: verified.
type httpKnocks struct{ e *evidence.Episodes }

var httpKinds = [...]evidence.ReqKind{
	httptracker.EventAnnounce:    evidence.ReqAnnounce,
	httptracker.EventScrape:      evidence.ReqScrape,
	httptracker.EventMalformed:   evidence.ReqGarbage,
	httptracker.EventOther:       evidence.ReqHTTP,
	httptracker.EventConnRefused: evidence.ReqConnect,
}

var httpActions = [...]evidence.Action{
	httptracker.Answered: evidence.ActServed,
	httptracker.Refused:  evidence.ActRefused,
	httptracker.Limited:  evidence.ActLimited,
	httptracker.Banned:   evidence.ActBanned,
	httptracker.Blocked:  evidence.ActBlocked,
}

// Request implements httptracker.Sink.
func (h httpKnocks) Request(ev httptracker.Event) {
	if int(ev.Kind) >= len(httpKinds) || int(ev.Outcome) >= len(httpActions) {
		return
	}
	k := evidence.Knock{
		Src: ev.Src, Kind: httpKinds[ev.Kind], Verified: true, Action: httpActions[ev.Outcome],
		Hashes: ev.Hashes, PeerID: ev.PeerID, HasPeerID: ev.HasPeerID, Port: ev.Port, UserAgent: ev.UserAgent,
	}
	h.e.Knock(&k, ev.Now)
}

// episodesView gives the admin API the episodes, which are built after
// the admin listener is bound (their alerts link to its address).
type episodesView struct{ s *server }

func (v episodesView) List(n int) []*evidence.Episode {
	if v.s.ev == nil {
		return nil
	}
	return v.s.ev.episodes.List(n)
}

func (v episodesView) Get(id string) (*evidence.Episode, bool) {
	if v.s.ev == nil {
		return nil, false
	}
	return v.s.ev.episodes.Get(id)
}

// episodesAPI is what the admin API serves of the episodes: nil when
// evidence is off.
func (s *server) episodesAPI() admin.Episodes {
	if !s.cfg.Evidence.Enabled {
		return nil
	}
	return episodesView{s}
}
