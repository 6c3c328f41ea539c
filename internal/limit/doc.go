// Package limit is warden's guard: it decides, before any other work,
// whether a request from a source address is served. It holds per-source
// rate limits in a fixed amount of memory (the Limiter), automatic bans
// for sources that keep pushing past them (and bans the operator imposes),
// and the operator's static CIDR blocklist. "The guard" in the CLI (warden
// guard), the admin API (/api/guard) and /stats is this package; its
// settings are the [limit] section of the config.
//
// It owns no socket and no clock. A frontend asks the Guard once per
// request, with the time it already has, and drops the request without
// replying unless the verdict is Allowed:
//
//	if guard.Check(src, now) != limit.Allowed {
//		return // drop
//	}
//
// Guard.Blocked is a read-only look at the blocklist alone, for sources
// that have not proven their address. Every request the guard turns away
// is reported to the Sink the guard was given (cmd/warden connects it to
// package evidence); exporting bans to a firewall is the caller's
// business, and Bans and Stats give it what it needs.
//
// # Rate limits
//
// Every request is charged to two keys: the source address (an IPv4 /32,
// or an IPv6 /64 by default, since whoever has one address of a /64 can
// use them all) and its prefix (an IPv4 /24 or IPv6 /48 by default), so
// that the addresses of one network are limited together: a company
// sending 8,000 packets/s from a rack of servers is held to the prefix
// rate however it spreads them. A request passes only if both keys have a
// token. A refused request takes no token (a flood does not starve the
// source's later, conforming requests) but is counted in the drop bucket
// of the key that refused it, which bans.
//
// Each key's token bucket is a single GCRA theoretical arrival time (tat,
// in nanoseconds): the bucket is full when tat <= now, and a request is
// allowed if max(tat, now)+interval <= now+burst*interval, which then
// becomes the new tat. This is exact to the nanosecond (interval is
// 1s/rate rounded to a nanosecond) and takes 8 bytes.
//
// Those nanoseconds are counted on the monotonic clock, from New: the
// times the callers pass come from time.Now, whose monotonic reading
// time.Time.Sub prefers. Counted on the wall clock, a step back of ten
// seconds (an NTP correction, a VM resumed) would put the bucket of every
// busy source in the future and ban it on its next request, and a step of
// an hour everyone seen in that hour (TestClockStepBack). Bans keep their
// times on the same clock; Bans reports them on the caller's wall clock.
//
// # Bounded memory
//
// The keys live in one table that New allocates and nothing grows: an
// array of sets of 7 ways, 128 bytes a set (two cache lines: a spinlock,
// the tags and the drop buckets in the first, the tats in the second),
// 18.3 bytes a key. The default 64 MiB hold 3.47 million keys beside a
// ban table of 65,536 records (3.5 MiB). A key's set and its 30-bit tag
// come from hash/maphash of the key under seeds drawn at New, one per
// kind of key, so that nobody outside can choose keys that fall into one
// set. The table holds no pointer, so the garbage collector never scans
// it. Allow never allocates, and nothing it does depends on how many
// sources there are; what it costs depends only on whether its two sets
// are in the CPU's cache (see Limiter.Allow).
//
// When a new key finds its set full, it takes the way with the smallest
// tat: the key whose bucket is fullest, so whose state is worth least. A
// key whose tat has passed is exactly what a new key would be, and
// evicting it loses nothing. In a flood of spoofed one-off sources that is
// nearly always the case, since a one-off key's tat passes one interval
// after its only request (20ms at the default rate); such evictions are
// not even counted. A heavy hitter keeps its bucket empty, so its tat runs
// ahead of the clock and it is evicted only by keys heavier than itself:
// it stays resident however many one-off sources pass through its set
// (TestHeavyHitterResidency: one source at ten times its rate among a
// million spoofed ones, twenty times what the table holds, is held to
// its rate to the request and banned).
//
// An evicted key that comes back starts afresh, which could be a way to
// reset a bucket: flood the table with keys that drain their own buckets
// until the target is the least drained of its set. This costs a burst
// per flooding key and a whole table of them, since the set is secret,
// but we close it anyway: a newcomer that evicts live state (a tat still
// ahead of the clock) inherits that tat, capped so that it may send one
// request at once. The min of a set's tats then never falls while it is
// ahead of the clock, so an evicted key that comes back starts no fuller
// than it would have been had it stayed, give or take that one request.
// Stats.Evictions counts these evictions of live state. TestEvictionChurn
// measures the attack on a small table: without inheritance the attacker
// got 755 to 1000 of its 1000 requests through in 10s instead of its fair
// 119; with it, a median of 118 and at worst 181 over 200 runs. The price
// is paid by honest newcomers while a flood keeps every way of their set
// drained: in the same test they got about 1 request of a 20-request
// burst at once instead of 20 (then their rate, as usual). Keeping every
// way of the default table drained takes about 170 million requests a
// second (3.47 million ways, each spending a burst of 500 every 10s).
//
// Two keys of one set with the same 30-bit tag share a bucket: about one
// in 150 million new keys, when its set is full.
//
// # Bans
//
// A key (an address or a prefix) is banned on its ban_after-th drop
// within ban_window (a leaky bucket of drops kept beside the token
// bucket), for ban_duration, doubling with each ban in a row up to
// ban_max. The ban is cached in the key's way, so a banned source costs
// no more than any other; the request that triggers a ban is Banned.
//
// Bans are recorded in a second fixed table, of max_bans records in sets
// of 8, apart from the rate table, so that a flood of new sources that
// evicts a banned key from the rate table does not lift its ban: a key
// entering the rate table looks itself up there (a lock-free read). Only
// a source that has dropped ban_after requests, or a key the operator
// bans with Ban, can take a ban record, so spoofed one-off addresses
// cannot fill it. When the 8 records of a set
// all hold running bans, a new ban there is refused and counted in
// Stats.BansRefused: its source stays rate limited and is tried again
// after another ban_after drops, and no running ban is ever cut short. A
// record outlives its ban by ban_max, to double the next one, and is
// then forgotten; an ended or forgotten record is reused first.
//
// Ban imposes a ban from outside (the operator, another node) into the
// same table, whether or not automatic bans are on. It takes only a key of
// the Limiter; ParsePrefix reads the addresses and prefixes operators
// write, for bans as for the blocklist.
//
// # Connects
//
// A UDP connect comes before its source has proven its address, so
// anyone can send one in a victim's name. The Guard charges connects to a
// second Limiter of their own (connect_rate_per_sec, connect_burst,
// connect_table_bytes), built with its prefix keys equal to its address
// keys, so each address has one bucket and no prefix is charged: forged
// connects can hold back the connects of the address they name, no
// other. It drops over the rate and never bans or reports, and the
// address's announce bucket is not touched; the first Limiter and its
// bans see only verified requests.
//
// # Concurrency
//
// A Limiter is safe for concurrent use. Allow takes the spinlocks of the
// key's two sets, always in index order, and to impose a ban the ban
// table's mutex after them; Bans, Ban and Unban take that mutex, and Ban
// and Unban a set's spinlock after releasing it. Stats reads striped atomic counters.
// A Blocklist is immutable.
package limit
