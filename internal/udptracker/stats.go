package udptracker

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"

	"warden/internal/reqstat"
)

// Stats are totals since Listen, summed over all workers. Every datagram
// received is counted exactly once as a connect, announce, scrape or drop.
type Stats struct {
	Received uint64 `json:"received"` // datagrams read
	Sent     uint64 `json:"sent"`     // replies written

	Connects        uint64 `json:"connects"`
	AnnouncesOK     uint64 `json:"announces_ok"`
	AnnouncesFailed uint64 `json:"announces_failed"` // refused or failed: an error action, or calmed
	// RefusalsCalmed counts the refused announces of AnnouncesFailed
	// answered with an empty announce reply carrying the refusal interval
	// (udp.refusal_reply = "calm"), not with an error.
	RefusalsCalmed uint64 `json:"refusals_calmed"`
	ScrapesOK      uint64 `json:"scrapes_ok"`
	ScrapesFailed  uint64 `json:"scrapes_failed"` // answered with an error action
	ErrorsSent     uint64 `json:"errors_sent"`

	// Dropped datagrams get no reply.
	DroppedBadPacket     uint64 `json:"dropped_bad_packet"`     // too short or long, bad magic, bad length
	DroppedBadCookie     uint64 `json:"dropped_bad_cookie"`     // forged or expired connection ID
	DroppedUnknownAction uint64 `json:"dropped_unknown_action"` // action other than 0, 1 or 2
	DroppedBlocked       uint64 `json:"dropped_blocked"`        // source on the blocklist
	DroppedLimited       uint64 `json:"dropped_limited"`        // source or prefix over its rate
	// DroppedConnectLimited counts connects over their address's connect
	// rate (limit.connect_rate_per_sec), which are dropped but never ban.
	DroppedConnectLimited uint64 `json:"dropped_connect_limited"`
	DroppedBanned         uint64 `json:"dropped_banned"` // source or prefix banned
	ShedRefusals          uint64 `json:"shed_refusals"`  // refusals dropped while the worker was behind

	// KernelBans is the number of banned or blocklisted prefixes in the
	// sockets' filters now (the guard's, see limit.Guard.Filter); their
	// datagrams are dropped by the kernel, uncounted here.
	KernelBans uint64 `json:"kernel_bans"`

	ReadErrors  uint64 `json:"read_errors"`
	WriteErrors uint64 `json:"write_errors"` // replies the OS refused

	// Requests counts the datagrams again by kind, source address family
	// and outcome, and times the batches they were answered in (from the
	// read returning to the replies written).
	Requests reqstat.Table `json:"requests"`
}

// counter indexes counters.
type counter int

const (
	cReceived counter = iota
	cSent
	cConnects
	cAnnouncesOK
	cAnnouncesFailed
	cRefusalsCalmed
	cScrapesOK
	cScrapesFailed
	cErrorsSent
	cDroppedBadPacket
	cDroppedBadCookie
	cDroppedUnknownAction
	cDroppedBlocked
	cDroppedLimited
	cDroppedConnectLimited
	cDroppedBanned
	cShedRefusals
	cReadErrors
	cWriteErrors
	numCounters
)

// counters belong to one worker, so increments do not contend; they are
// atomic only so Stats can read them while the worker runs. The padding
// keeps two workers' counters off one cache line.
type counters struct {
	_ cpu.CacheLinePad
	c [numCounters]atomic.Uint64
	_ cpu.CacheLinePad
	// req splits the same datagrams by kind, family and outcome.
	req reqstat.Counters
}

func (c *counters) inc(k counter) { c.c[k].Add(1) }

func (c *counters) add(k counter, n uint64) { c.c[k].Add(n) }

// addTo adds c's values to st.
func (c *counters) addTo(st *Stats) {
	st.Received += c.c[cReceived].Load()
	st.Sent += c.c[cSent].Load()
	st.Connects += c.c[cConnects].Load()
	st.AnnouncesOK += c.c[cAnnouncesOK].Load()
	st.AnnouncesFailed += c.c[cAnnouncesFailed].Load()
	st.RefusalsCalmed += c.c[cRefusalsCalmed].Load()
	st.ScrapesOK += c.c[cScrapesOK].Load()
	st.ScrapesFailed += c.c[cScrapesFailed].Load()
	st.ErrorsSent += c.c[cErrorsSent].Load()
	st.DroppedBadPacket += c.c[cDroppedBadPacket].Load()
	st.DroppedBadCookie += c.c[cDroppedBadCookie].Load()
	st.DroppedUnknownAction += c.c[cDroppedUnknownAction].Load()
	st.DroppedBlocked += c.c[cDroppedBlocked].Load()
	st.DroppedLimited += c.c[cDroppedLimited].Load()
	st.DroppedConnectLimited += c.c[cDroppedConnectLimited].Load()
	st.DroppedBanned += c.c[cDroppedBanned].Load()
	st.ShedRefusals += c.c[cShedRefusals].Load()
	st.ReadErrors += c.c[cReadErrors].Load()
	st.WriteErrors += c.c[cWriteErrors].Load()
	c.req.AddTo(&st.Requests)
}
