// Package metrics exports warden's state in the Prometheus text format at
// /metrics. It reads everything at scrape time, through the one typed
// snapshot of package status (which each part fills from its own
// counters), the kernel's socket counters (package procstat), and the
// process (client_golang's process collector). Nothing on the request
// path imports this package or a metrics library: the frontends count in
// fixed arrays of atomic counters (package reqstat), which a scrape sums.
// Every metric is built as a constant metric during the scrape, so the
// number of series is fixed by the enums, whatever the traffic or the
// number of sources.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"warden/internal/limit"
	"warden/internal/procstat"
	"warden/internal/ratelog"
	"warden/internal/reqstat"
	"warden/internal/status"
)

// Sources are what a scrape reads.
type Sources struct {
	// Status returns the snapshot GET /stats serves. Required.
	Status func() status.Snapshot
	// Guard, if set, is read for how full the limiter's tables are and
	// the bans running (its counters come through Status).
	Guard *limit.Guard
	// UDPPorts are the ports of warden's UDP sockets, whose kernel drops
	// /metrics reports; none, no UDP socket metrics.
	UDPPorts []uint16
	// TCP reports the kernel's TCP listen counters; nil means
	// procstat.ReadTCP (tests pass their own).
	TCP func() (procstat.TCP, error)
}

// Handler returns the /metrics handler: warden's collector, the process
// collector (CPU, resident memory, open file descriptors) and the Go
// runtime's. A source that cannot be read (a /proc file) leaves its
// metrics out and is logged, rate-limited; the rest are served.
func Handler(src Sources, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src, log),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4, // a scrape reads /proc and the limiter: no pile-up
		Timeout:             10 * time.Second,
	})
}

const ns = "warden"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

// The descriptions, built once.
var (
	dRequests = desc("requests_total",
		"Requests by protocol, kind, source address family and outcome.",
		"protocol", "kind", "family", "outcome")
	dLatency = desc("request_duration_seconds",
		"Time to answer a request: HTTP from the request header read to the handler's return; UDP from a batch read to its replies written, for each datagram of the batch.",
		"protocol")
	dUDPReceived    = desc("udp_datagrams_received_total", "UDP datagrams read.")
	dUDPSent        = desc("udp_replies_sent_total", "UDP replies written.")
	dUDPErrors      = desc("udp_socket_errors_total", "UDP socket errors, by direction.", "op")
	dUDPCalmed      = desc("udp_refusals_calmed_total", "Refused UDP announces answered with an empty reply carrying the refusal interval.")
	dUDPKernelBans  = desc("udp_kernel_bans", "Banned or blocklisted prefixes in the UDP sockets' kernel filters now.")
	dUDPDrops       = desc("udp_socket_drops_total", "Datagrams the kernel dropped on warden's UDP sockets: a full receive buffer, or a socket filter (/proc/net/udp).")
	dUDPQueue       = desc("udp_socket_receive_queue_bytes", "Bytes waiting in warden's UDP sockets' receive queues.")
	dUDPSockets     = desc("udp_sockets", "UDP sockets warden reads (one per worker).")
	dHTTPConnsOpen  = desc("http_connections_open", "HTTP tracker connections open now.")
	dHTTPConns      = desc("http_connections_closed_total", "HTTP tracker connections closed by warden, by reason.", "reason")
	dHTTPBadForward = desc("http_bad_forwarded_total", "Requests from trusted proxies whose client address header was unusable.")
	dTCPListen      = desc("tcp_listen_total", "The kernel's TCP listen queue counters for the network namespace, all ports (/proc/net/netstat).", "event")
	dTCPCookies     = desc("tcp_syncookies_total", "SYN cookies in the network namespace, all ports (/proc/net/netstat).", "event")
	dSwarmTorrents  = desc("swarm_torrents", "Torrents with peers in the swarm store.")
	dSwarmPeers     = desc("swarm_peers", "Peers in the swarm store, by role.", "role")
	dSwarmOffHeap   = desc("swarm_off_heap_bytes", "Memory the swarm store keeps outside the Go heap.")
	dSwarmRefused   = desc("swarm_refused_total", "New torrents or peers the swarm store's bounds refused or did not record, by bound.", "bound")
	dRegistry       = desc("registry_entries", "Registered torrents, active and revoked.")
	dRefusals       = desc("refusals_total", "Announces and scrape hashes refused because the torrent is not tracked, by reason.", "reason")
	dGuard          = desc("guard_verdicts_total", "The per-source limiter's verdicts.", "verdict")
	dGuardEvictions = desc("guard_evictions_total", "Keys pushed out of the rate table while they held state.")
	dGuardLive      = desc("guard_table_live_keys", "Keys in the rate table holding state (a bucket not yet full, a ban): an estimate above 16384 sets.")
	dGuardSlots     = desc("guard_table_slots", "Keys the rate table holds at most.")
	dGuardBytes     = desc("guard_table_bytes", "Memory of the limiter's tables.")
	dBansActive     = desc("guard_bans_active", "Bans running now.")
	dBansImposed    = desc("guard_bans_imposed_total", "Bans imposed, repeats included.")
	dBansRefused    = desc("guard_bans_refused_total", "Bans not imposed because the ban table was full.")
	dKernelFilter   = desc("guard_kernel_filter_prefixes", "Banned or blocklisted prefixes the kernel drops packets from (in), and those that did not fit (left_out).", "state")
	dOffenders      = desc("guard_turned_away_total", "Requests turned away by the guard or the blocklist, by reason.", "reason")
	dEpisodesOpen   = desc("episodes_open", "Abuse episodes open now.")
	dEpisodes       = desc("episodes_total", "Abuse episodes opened and closed since start.", "event")
	dAlerts         = desc("alerts_total", "Webhook alerts about episodes, by result.", "result")
	dUptime         = desc("uptime_seconds", "Seconds since warden serve started.")
	dInfo           = desc("build_info", "Always 1: the version and tracking mode as labels.", "version", "mode")
)

var allDescs = []*prometheus.Desc{
	dRequests, dLatency, dUDPReceived, dUDPSent, dUDPErrors, dUDPCalmed, dUDPKernelBans, dUDPDrops, dUDPQueue,
	dUDPSockets, dHTTPConnsOpen, dHTTPConns, dHTTPBadForward, dTCPListen, dTCPCookies, dSwarmTorrents, dSwarmPeers,
	dSwarmOffHeap, dSwarmRefused, dRegistry, dRefusals, dGuard, dGuardEvictions, dGuardLive, dGuardSlots,
	dGuardBytes, dBansActive, dBansImposed, dBansRefused, dKernelFilter, dOffenders, dEpisodesOpen, dEpisodes, dAlerts, dUptime, dInfo,
}

// Collector is a prometheus.Collector reading Sources at each scrape.
type Collector struct {
	src    Sources
	errLog *ratelog.Logger
}

// NewCollector returns a collector of src.
func NewCollector(src Sources, log *slog.Logger) *Collector {
	if src.TCP == nil {
		src.TCP = procstat.ReadTCP
	}
	return &Collector{src: src, errLog: ratelog.New(log.With("component", "metrics"), slog.LevelWarn, time.Minute, nil)}
}

// Describe sends every description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the sources and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	gauge(dInfo, 1, st.Version, st.Mode.String())
	gauge(dUptime, time.Duration(st.Uptime).Seconds())
	if st.UDP != nil {
		u := st.UDP
		requests(ch, "udp", &u.Requests)
		counter(dUDPReceived, u.Received)
		counter(dUDPSent, u.Sent)
		counter(dUDPErrors, u.ReadErrors, "read")
		counter(dUDPErrors, u.WriteErrors, "write")
		counter(dUDPCalmed, u.RefusalsCalmed)
		gauge(dUDPKernelBans, float64(u.KernelBans))
	}
	if st.HTTP != nil {
		h := st.HTTP
		requests(ch, "http", &h.Requests)
		gauge(dHTTPConnsOpen, float64(h.ConnsOpen))
		counter(dHTTPConns, h.ConnsRefused, "refused")
		counter(dHTTPConns, h.ConnsEvicted, "evicted")
		counter(dHTTPBadForward, h.BadForwards)
	}
	if len(c.src.UDPPorts) > 0 {
		if u, err := procstat.ReadUDP(c.src.UDPPorts); err != nil {
			c.errLog.Log("kernel UDP counters unreadable", slog.Any("err", err))
		} else {
			counter(dUDPDrops, u.Drops)
			gauge(dUDPQueue, float64(u.RxQueueBytes))
			gauge(dUDPSockets, float64(u.Sockets))
		}
	}
	if t, err := c.src.TCP(); err != nil {
		c.errLog.Log("kernel TCP counters unreadable", slog.Any("err", err))
	} else {
		counter(dTCPListen, t.ListenOverflows, "overflow")
		counter(dTCPListen, t.ListenDrops, "drop")
		counter(dTCPCookies, t.SyncookiesSent, "sent")
		counter(dTCPCookies, t.SyncookiesRecv, "received")
		counter(dTCPCookies, t.SyncookiesFailed, "failed")
	}

	sw := st.Swarm
	gauge(dSwarmTorrents, float64(sw.Torrents))
	gauge(dSwarmPeers, float64(sw.Seeders), "seeder")
	gauge(dSwarmPeers, float64(sw.Leechers), "leecher")
	gauge(dSwarmOffHeap, float64(sw.OffHeapBytes))
	counter(dSwarmRefused, sw.RefusedFull, "tracker_full")
	counter(dSwarmRefused, sw.RefusedPrefix, "prefix_full")
	counter(dSwarmRefused, sw.UnrecordedSwarmFull, "swarm_full")
	counter(dSwarmRefused, sw.UnrecordedAddressFull, "address_full")
	gauge(dRegistry, float64(st.Registry.Entries))
	counter(dRefusals, st.Refused.Unregistered, "unregistered")
	counter(dRefusals, st.Refused.Revoked, "revoked")

	g := st.Guard
	counter(dGuard, g.Allowed, "allowed")
	counter(dGuard, g.Limited, "limited")
	counter(dGuard, g.Banned, "banned")
	counter(dGuardEvictions, g.Evictions)
	counter(dBansImposed, g.BansImposed)
	counter(dBansRefused, g.BansRefused)
	gauge(dKernelFilter, float64(g.KernelFilterPrefixes), "in")
	gauge(dKernelFilter, float64(g.KernelFilterLeftOut), "left_out")
	if c.src.Guard != nil {
		lim := c.src.Guard.Limiter()
		now := time.Now()
		live, slots := lim.Occupancy(now)
		gauge(dGuardLive, float64(live))
		gauge(dGuardSlots, float64(slots))
		gauge(dGuardBytes, float64(lim.MemoryBytes()))
		gauge(dBansActive, float64(len(lim.Bans(now))))
	}
	o := st.Offenders
	counter(dOffenders, o.Limited, "limited")
	counter(dOffenders, o.Banned, "banned")
	counter(dOffenders, o.Blocked, "blocked")

	if e := st.Episodes; e != nil {
		gauge(dEpisodesOpen, float64(e.EpisodeStats.Open))
		counter(dEpisodes, e.Opened, "opened")
		counter(dEpisodes, e.Closed, "closed")
	}
	if a := st.Alerts; a != nil {
		counter(dAlerts, a.Sent, "sent")
		counter(dAlerts, a.Failed, "failed")
		counter(dAlerts, a.Dropped, "dropped")
	}
}

// requests sends a frontend's requests by kind, family and outcome (every
// combination, zeros included, so that rate() sees a series from the
// start) and its latency histogram.
func requests(ch chan<- prometheus.Metric, protocol string, t *reqstat.Table) {
	for k := range reqstat.NumKinds {
		for f := range reqstat.NumFamilies {
			for o := range reqstat.NumOutcomes {
				ch <- prometheus.MustNewConstMetric(dRequests, prometheus.CounterValue, float64(t.Requests[k][f][o]),
					protocol, k.String(), f.String(), o.String())
			}
		}
	}
	buckets := make(map[float64]uint64, reqstat.NumBuckets-1)
	var cum uint64
	for i, n := range t.Latency.Counts {
		cum += n
		if ub := reqstat.UpperBound(i); ub > 0 {
			buckets[ub.Seconds()] = cum
		}
	}
	ch <- prometheus.MustNewConstHistogram(dLatency, cum, t.Latency.Sum.Seconds(), buckets, protocol)
}
