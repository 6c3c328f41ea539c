package httptracker

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/reqstat"
)

// TestRequestOutcomes sends one request of each outcome, from IPv4 and
// IPv6 sources, and checks that Stats.Requests counts each exactly once
// under its kind, family and outcome, and times every request that got
// past the path and method checks.
func TestRequestOutcomes(t *testing.T) {
	h := newHandler(allowlistTracker(""), nil, "", false, slog.New(slog.DiscardHandler))
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst, cfg.BanAfter, cfg.BanWindow = 1, 4, 2, time.Minute // four charged per source before "limited"
	cfg.RefusalCost = 1                                                           // refusals among them cost one each
	h.guard = newGuard(t, cfg, "192.0.2.0/24\n")
	foreign := bittorrent.InfoHash{0xfe}
	type step struct {
		name, remote, method, target string
		k                            reqstat.Kind
		f                            reqstat.Family
		o                            reqstat.Outcome
	}
	var steps []step
	for _, src := range []struct {
		remote string
		f      reqstat.Family
	}{{"198.51.100.7:4000", reqstat.IPv4}, {"[2001:db8::7]:4000", reqstat.IPv6}} {
		r, f := src.remote, src.f
		steps = append(steps,
			step{"announce", r, "GET", announceURL(1, 6881, 100, ""), reqstat.Announce, f, reqstat.OK},
			step{"refused announce", r, "GET", "/announce?info_hash=" + escapeAll(foreign[:]) + "&peer_id=" + escapeAll(testPeerID[:]) + "&port=1&left=1", reqstat.Announce, f, reqstat.RefusedUnregistered},
			step{"refused scrape", r, "GET", "/scrape?info_hash=" + escapeAll(foreign[:]), reqstat.Scrape, f, reqstat.RefusedUnregistered},
			step{"malformed", r, "GET", "/announce?info_hash=x", reqstat.Announce, f, reqstat.BadRequest},
			step{"other path", r, "GET", "/nope", reqstat.Other, f, reqstat.BadRequest},
			step{"other method", r, "POST", "/announce", reqstat.Other, f, reqstat.BadRequest},
			step{"limited", r, "GET", "/scrape", reqstat.Scrape, f, reqstat.Limited},
			step{"limited again", r, "GET", "/scrape", reqstat.Scrape, f, reqstat.Limited}, // the second drop bans
			step{"banned", r, "GET", announceURL(1, 6881, 100, ""), reqstat.Announce, f, reqstat.Banned},
		)
	}
	steps = append(steps, step{"blocked", "192.0.2.9:1", "GET", "/scrape", reqstat.Scrape, reqstat.IPv4, reqstat.Blocked})

	var want [reqstat.NumKinds][reqstat.NumFamilies][reqstat.NumOutcomes]uint64
	var timed uint64
	for _, s := range steps {
		r := httptest.NewRequest(s.method, s.target, nil)
		r.RemoteAddr = s.remote
		h.ServeHTTP(httptest.NewRecorder(), r)
		want[s.k][s.f][s.o]++
		if s.k != reqstat.Other {
			timed++
		}
		var tab reqstat.Table
		h.stats.req.AddTo(&tab)
		if tab.Requests != want {
			t.Fatalf("after %s from %s: requests %v, want %v", s.name, s.remote, tab.Requests, want)
		}
		if n := tab.Latency.Count(); n != timed {
			t.Fatalf("after %s: %d requests timed, want %d", s.name, n, timed)
		}
	}
}
