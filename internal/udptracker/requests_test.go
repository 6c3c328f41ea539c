package udptracker

import (
	"net/netip"
	"testing"

	"warden/internal/limit"
	"warden/internal/reqstat"
)

// TestRequestOutcomes sends one datagram of each outcome from an IPv4
// and an IPv6 source and checks that Stats.Requests counts each exactly
// once under its kind, family and outcome.
func TestRequestOutcomes(t *testing.T) {
	c := newRefusingCodec(t, ReplyError, "") // testHash(1) revoked, the rest unregistered
	gcfg := limit.DefaultConfig()
	gcfg.RatePerSec, gcfg.Burst, gcfg.BanAfter = 1, 4, 0 // the fifth charged request (below) is over the rate
	gcfg.RefusalCost = 1                                 // the refused scrape below costs one, like the rest
	c.guard = newTestGuard(t, gcfg, "192.0.2.0/24\n")
	blocked := netip.MustParseAddrPort("192.0.2.9:6881")

	for _, src := range []netip.AddrPort{src4, src6} {
		fam := reqstat.FamilyOf(src.Addr())
		t.Run(fam.String(), func(t *testing.T) {
			*c.stats = counters{}
			cid := c.connect(t, src) // connect ok
			steps := []struct {
				name string
				pkt  []byte
				shed bool
				want key
			}{
				{"revoked", announce{cid: cid, ih: testHash(1), left: 1}.pkt(), false, key{reqstat.Announce, reqstat.RefusedRevoked}},
				{"unregistered", scrapePkt(cid, 2, testHash(2)), false, key{reqstat.Scrape, reqstat.RefusedUnregistered}},
				{"shed", announce{cid: cid, ih: testHash(3), left: 1}.pkt(), true, key{reqstat.Announce, reqstat.Shed}},
				{"forged cookie", announce{cid: cid ^ 1}.pkt(), false, key{reqstat.Announce, reqstat.BadRequest}},
				{"bad event", announce{cid: cid, event: 9}.pkt(), false, key{reqstat.Announce, reqstat.BadRequest}},
				{"garbage", []byte("garbage garbage garbage"), false, key{reqstat.Other, reqstat.BadRequest}},
				{"limited", scrapePkt(cid, 3, testHash(2)), false, key{reqstat.Scrape, reqstat.Limited}},
			}
			want := map[key]uint64{{reqstat.Connect, reqstat.OK}: 1}
			for _, s := range steps {
				c.shed = s.shed
				c.do(src, s.pkt)
				want[s.want]++
				check(t, s.name, c.stats, fam, want)
			}
			c.shed = false
		})
	}
	*c.stats = counters{}
	c.do(blocked, connectPkt(1))
	check(t, "blocked", c.stats, reqstat.IPv4, map[key]uint64{{reqstat.Connect, reqstat.Blocked}: 1})
}

// key is a request kind and outcome.
type key struct {
	k reqstat.Kind
	o reqstat.Outcome
}

// check compares the requests counted in cs (all of family fam) with want.
func check(t *testing.T, step string, cs *counters, fam reqstat.Family, want map[key]uint64) {
	t.Helper()
	var st Stats
	cs.addTo(&st)
	for k := range reqstat.NumKinds {
		for f := range reqstat.NumFamilies {
			for o := range reqstat.NumOutcomes {
				var w uint64
				if f == fam {
					w = want[key{k, o}]
				}
				if got := st.Requests.Requests[k][f][o]; got != w {
					t.Errorf("after %s: %v %v %v = %d, want %d", step, k, f, o, got, w)
				}
			}
		}
	}
}
