// Package dashboard serves the operator's live pages on the admin
// listener, from assets embedded in the binary: requests per second by
// outcome over the last hour, who is being turned away now, bans, abuse
// episodes, the registry, and the configuration in force.
//
// It owns the login (the admin token in a form, traded for a server-side
// session in an HttpOnly, SameSite=Strict cookie), CSRF protection, and a
// ring of one-second samples that one goroutine fills and every viewer
// shares, so a viewer costs the tracker nothing. Changes (ban, revoke,
// add) go through the admin JSON API, which asks Authorize to vouch for a
// session; this package holds no second copy of those actions.
package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/ratelog"
	"warden/internal/reqstat"
)

// Deps are what the dashboard reads. Only CheckToken and Requests are
// required.
type Deps struct {
	// CheckToken reports, in constant time, whether a login's token is
	// the admin token.
	CheckToken func(token string) bool
	// Requests returns the running totals of requests by outcome over
	// every frontend: the sums of the per-worker counters (package
	// reqstat) that /stats and /metrics read. It is called once a
	// second, viewers or not, so it must be cheap: no locks the request
	// path takes.
	Requests func() [reqstat.NumOutcomes]uint64
	// Knocks names the sources the guard turns away; nil shows none.
	Knocks *evidence.Knocks
	// Guard has the bans; nil shows none.
	Guard *limit.Guard
	// Org names the organisation an address belongs to, "" if unknown;
	// nil leaves the column empty.
	Org func(netip.Addr) string
	// Config is the configuration in force as the operator writes it
	// (TOML), secrets redacted.
	Config string
	// Checkpoint returns the evidence log's latest checkpoint; nil (or
	// an error) when evidence is off.
	Checkpoint func(ctx context.Context) (evidence.Checkpoint, error)
}

// Dashboard serves /ui/ and vouches for its sessions to the admin API.
// New starts nothing; Run samples.
type Dashboard struct {
	deps     Deps
	log      *slog.Logger
	failLog  *ratelog.Logger
	now      func() time.Time
	config   string
	sessions *sessions
	ring     *ring
	hub      *hub
	top      topTracker
}

// New returns a dashboard over deps. It fails without the required ones.
func New(deps Deps, log *slog.Logger) (*Dashboard, error) {
	if deps.CheckToken == nil || deps.Requests == nil {
		return nil, errors.New("dashboard: CheckToken and Requests are required")
	}
	log = log.With("component", "dashboard")
	d := &Dashboard{
		deps:     deps,
		log:      log,
		failLog:  ratelog.New(log, slog.LevelWarn, time.Minute, nil),
		now:      time.Now,
		config:   deps.Config,
		sessions: newSessions(MaxSessions, SessionTTL),
		ring:     newRing(),
		hub:      newHub(MaxViewers),
	}
	return d, nil
}

// Run samples the counters once a second into the ring and, while
// someone watches, sends each viewer the second's event. It returns when
// ctx is done.
func (d *Dashboard) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	d.sample(d.now())
	for {
		select {
		case <-ctx.Done():
			d.hub.closeAll()
			return nil
		case now := <-t.C:
			d.sample(now)
		}
	}
}

// sample takes one second's counts and, if anyone watches, builds the
// second's event once for all of them.
func (d *Dashboard) sample(now time.Time) {
	counts := d.ring.add(now.Unix(), d.deps.Requests())
	d.sessions.expire(now)
	if d.hub.viewers() == 0 {
		return
	}
	ev := tickEvent{T: now.Unix(), C: counts[:]}
	d.top.fill(&ev, d.deps, now)
	b, err := json.Marshal(ev)
	if err != nil {
		d.failLog.Log("dashboard event", slog.Any("err", err))
		return
	}
	d.hub.broadcast(sseFrame("tick", b))
}

// The bounds of what the dashboard keeps, whoever asks.
const (
	// MaxSessions bounds the logged-in sessions; a new login past it
	// ends the session closest to expiry.
	MaxSessions = 64
	// SessionTTL is how long a login lasts.
	SessionTTL = 12 * time.Hour
	// MaxViewers bounds the open event streams.
	MaxViewers = 16
)
