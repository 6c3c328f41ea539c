package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"warden/internal/confkey"
	"warden/internal/limit"
	"warden/internal/loadgen"
)

var loadCommand = &command{
	name:    "load",
	args:    "(--udp ADDR | --http URL) [flags]",
	summary: "load-test a tracker you operate (loopback only by default)",
	help:    loadHelp,
	setup:   setupLoad,
}

const loadHelp = `
Plays many BitTorrent clients against a tracker and reports, per kind of
request, how many were answered, refused (failure replies), lost (timeouts) or
malformed (bad), replies per second, and latency quantiles. Every reply is
checked against its request: UDP action, transaction ID, length for the
address family, interval; HTTP status, bencoding, failure reason.

Only loopback targets and sources (127.0.0.0/8, ::1) are allowed unless
--allow-remote is given: use it only for servers you operate. A run always
ends by itself after --warmup + --duration (+ --timeout for replies in
flight) or --max-requests requests, whichever comes first.

Over UDP each worker is one socket, bound to its own source address, with
--window requests in flight and its own BEP 15 connection ID (refreshed
before it expires, and after an error or a timeout, at most once a second).
Over HTTP each worker is one keep-alive connection with one request in
flight; the "connect" row then counts TCP connections.

The legit info hashes are --torrents hashes from --hashes FILE, or generated
ones (see --print-hashes, to write a tracker's whitelist). Each of them has
--peers simulated peers, spread over the workers.

--scenario flood asks whether the tracker still serves its users while it
is flooded. Two classes run at once:
  legit  new peers joining the legit torrents, each announcing once with
         event=started, --legit-rate joins/s paced evenly, from the
         addresses of --legit-sources in turn (UDP: a socket and a
         connection ID per source; HTTP: a kept-alive connection per source).
         Reported: success %, latency from each join's start to its
         announce reply (connect included), and how far the generator
         lagged behind the schedule.
         With --legit-new-conn (HTTP) every join opens a connection of its
         own and asks the server to close it, as most clients do; its
         latency is then connect, request and reply.
  flood  announces for random unknown info hashes from --flood-sources, at
         --flood-rate (0 = as fast as the generator can, -1 = no flood).
         UDP: a real connect per source, then batches sent without waiting
         (sendmmsg, GSO); replies are counted by kind as they come.
         --flood-mode garbage or bad-cookie sends random bytes or forged
         connection IDs instead.
         HTTP: --flood-conns connections (default one per flood source),
         split by --flood-mix between these modes (MODE:WEIGHT,...):
           pipeline  keep-alive: one request on a new connection, then, if
                     the server keeps it, up to --flood-pipeline requests
                     in flight, a new one written as each reply comes
           churn     a new connection per request (Connection: close)
           idle      connect and say nothing, until the server closes the
                     connection or --flood-hold passes; then again
           partial   send an announce's request line and Host header, never
                     the end of the header; held like idle
         e.g. --flood-mix pipeline:3,churn:1. The report gives offered
         (sent) and answered requests, connections made, and how long the
         server held idle and partial connections, per mode. One core opens
         some 10-15,000 loopback connections a second at most (the kernel
         does both ends' handshakes on it), so heavier HTTP floods come
         from pipelining.
--workers, --window, --rate, --sources, --peers and --unknown-fraction do
not apply to it.

The legit class is timed by the process that floods unless --legit-rt PRIO
is given: a flood sharing the legit class's core delays it, and the delay
is counted as the tracker's latency (10-50 ms measured beside an HTTP
flood). --legit-rt starts a second warden process for the legit class with
its threads at real-time priority PRIO (SCHED_FIFO; Linux, needs root or
CAP_SYS_NICE), so the kernel runs it as soon as a reply arrives; the report
is one, with both classes.

With --server-pid (any scenario) the tracker's peak RSS and CPU use are
sampled from /proc; every report says how busy each CPU was, to tell a quiet
machine from a shared one.

Examples:
  warden load --torrents 1000 --print-hashes > whitelist
  warden load --udp 127.0.0.1:6969 --duration 30s
  warden load --http http://127.0.0.1:6969/announce --workers 64 --scenario mixed
  warden load --udp 127.0.0.1:6969 --rate 50000 --unknown-fraction 0.1 --json
  warden load --scenario flood --udp 127.0.0.1:6969 --hashes whitelist --server-pid 1234
  warden load --scenario flood --udp 127.0.0.1:6969 --flood-rate 8000 --flood-sources 127.1.0.1/32
  warden load --scenario flood --http http://127.0.0.1:6969/announce --hashes whitelist \
      --legit-new-conn --legit-rt 10 --flood-mix pipeline:3,churn:1 --flood-conns 2044`

// setupLoad declares the flags of "warden load". The run writes the
// report to stdout (a table, or JSON with --json) and returns a usageError
// naming a bad flag, or an error from loadgen.Run; failures of the target
// are in the report, not the error. It blocks until the run ends (at most
// --warmup + --duration + --timeout) or ctx is done.
func setupLoad(fs *flag.FlagSet) runFunc {
	def := loadgen.DefaultConfig()
	var (
		udpAddr     = fs.String("udp", "", "`ADDR` of the UDP tracker, host:port (BEP 15)")
		httpURL     = fs.String("http", "", "HTTP announce `URL`; scrapes go to its BEP 48 scrape URL")
		protocol    = fs.String("protocol", "", "udp or http; needed only when both --udp and --http are given")
		scenario    = fs.String("scenario", string(def.Scenario), "requests to send: announce, scrape, mixed or flood")
		scrapeFrac  = fs.Float64("scrape-fraction", def.ScrapeFraction, "share of scrapes in the mixed scenario, 0-1")
		scrapeN     = fs.Int("scrape-hashes", def.ScrapeHashes, fmt.Sprintf("info hashes per scrape, 1-%d", loadgen.MaxScrapeHashes))
		torrents    = fs.Int("torrents", def.Torrents, "number of legit info hashes (0 with --hashes: all of the file)")
		peers       = fs.Int("peers", def.PeersPerTorrent, "simulated peers per torrent")
		workers     = fs.Int("workers", def.Workers, fmt.Sprintf("concurrent clients, each from its own source address, 1-%d", loadgen.MaxWorkers))
		window      = fs.Int("window", def.Window, "UDP requests in flight per worker")
		rate        = fs.Float64("rate", def.Rate, "target requests per second over all workers; 0 = as fast as replies allow")
		duration    = fs.Duration("duration", def.Duration, "how long to measure, after the warm-up")
		warmup      = fs.Duration("warmup", def.Warmup, "how long to send before measuring; not counted")
		maxRequests = fs.Int64("max-requests", def.MaxRequests, "stop sending after this many announces and scrapes, warm-up included")
		sources     = fs.String("sources", "auto", "`CIDR` of source addresses to bind the workers to; auto = 127.1.0.0/16 for an IPv4 loopback target, ::1 for ::1; none = let the kernel choose")
		hashesFile  = fs.String("hashes", "", "`FILE` of legit info hashes, 40 hex digits per line")
		unknownFrac = fs.Float64("unknown-fraction", def.UnknownFraction, "share of requests using a random, unregistered info hash, 0-1")
		numWant     = fs.Int("numwant", def.NumWant, "numwant sent in announces; -1 = the tracker's default")
		timeout     = fs.Duration("timeout", def.Timeout, "time a request may wait for its reply")
		gso         = fs.Bool("gso", true, "send batches of UDP requests as GSO super-packets where Linux supports it (cheaper for the sender; the target sees the same datagrams)")
		asJSON      = fs.Bool("json", false, "write the report as JSON")
		allowRemote = fs.Bool("allow-remote", false, "allow targets and sources outside loopback (only servers you operate)")
		printHashes = fs.Bool("print-hashes", false, "print the --torrents generated info hashes, one per line, and exit (a whitelist for the tracker under test)")
		serverPID   = fs.Int("server-pid", 0, "`PID` of the tracker under test, on this machine: sample its peak RSS and CPU use from /proc")
		legitSrc    = fs.String("legit-sources", def.LegitSources.String(), "flood scenario: `CIDR` of the legit class's source addresses")
		legitRate   = fs.Float64("legit-rate", def.LegitRate, "flood scenario: legit joins per second, paced evenly; 0 = no legit class (a flood-only process)")
		floodSrc    = fs.String("flood-sources", def.FloodSources.String(), "flood scenario: `CIDR` of the flood's source addresses")
		floodRate   = fs.Float64("flood-rate", def.FloodRate, "flood scenario: flood datagrams (UDP) or requests (HTTP) per second; 0 = as fast as possible, -1 = no flood")
		floodMode   = fs.String("flood-mode", string(def.FloodMode), "flood scenario: valid (cookie-valid announces), garbage (random bytes, UDP) or bad-cookie (forged connection IDs, UDP)")
		floodWork   = fs.Int("flood-workers", def.FloodWorkers, fmt.Sprintf("flood scenario: goroutines sending the UDP flood, 1-%d; one core's worth each", loadgen.MaxFloodWorkers))
		floodMix    = fs.String("flood-mix", def.FloodMix.String(), "flood scenario, HTTP: `MIX` of connection modes, MODE[:WEIGHT],... of pipeline, churn, idle, partial")
		floodConns  = fs.Int("flood-conns", def.FloodConns, fmt.Sprintf("flood scenario, HTTP: flood connections, spread over --flood-sources; 0 = one per source; at most %d", loadgen.MaxFloodConns))
		floodPipe   = fs.Int("flood-pipeline", def.FloodPipeline, fmt.Sprintf("flood scenario, HTTP: requests in flight on a pipelined connection, 1-%d", loadgen.MaxPipeline))
		floodHold   = fs.Duration("flood-hold", def.FloodHold, "flood scenario, HTTP: longest an idle or partial connection is held; 0 = until the server closes it or sending stops")
		legitNew    = fs.Bool("legit-new-conn", def.LegitNewConn, "flood scenario, HTTP: a new connection per join (Connection: close), as most clients do")
		legitRT     = fs.Int("legit-rt", def.LegitRealtime, "flood scenario: time the legit class from a second process at this real-time (SCHED_FIFO) `PRIORITY`, 1-99; 0 = in this process")
		legitChild  = fs.Bool("legit-child", false, "internal: run the legit class for a parent started with --legit-rt, talking JSON on stdin and stdout")
	)
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("load: unexpected argument %q", args[0])}
		}
		if *legitChild {
			return loadgen.ServeLegitChild(ctx, os.Stdin, out.stdout)
		}
		if *printHashes {
			for _, h := range loadgen.GenerateHashes(*torrents) {
				fmt.Fprintln(out.stdout, h)
			}
			return nil
		}

		cfg := def
		cfg.UDP, cfg.HTTP = *udpAddr, *httpURL
		switch {
		case *protocol != "":
			cfg.Protocol = loadgen.Protocol(*protocol)
		case *udpAddr != "" && *httpURL != "":
			return usageError{errors.New("load: both --udp and --http given: choose one with --protocol")}
		case *httpURL != "":
			cfg.Protocol = loadgen.HTTP
		case *udpAddr != "":
			cfg.Protocol = loadgen.UDP
		default:
			return usageError{errors.New("load: give a target with --udp ADDR or --http URL")}
		}
		cfg.Scenario = loadgen.Scenario(*scenario)
		cfg.ScrapeFraction, cfg.ScrapeHashes = *scrapeFrac, *scrapeN
		cfg.Torrents, cfg.PeersPerTorrent, cfg.HashesFile = *torrents, *peers, *hashesFile
		cfg.UnknownFraction, cfg.NumWant = *unknownFrac, *numWant
		cfg.Workers, cfg.Window, cfg.Rate = *workers, *window, *rate
		cfg.Duration, cfg.Warmup, cfg.MaxRequests, cfg.Timeout = *duration, *warmup, *maxRequests, *timeout
		cfg.AllowRemote, cfg.NoGSO = *allowRemote, !*gso
		if *hashesFile != "" && !flagSet(fs, "torrents") {
			cfg.Torrents = 0 // all of the file
		}
		cfg.ServerPID = *serverPID
		cfg.LegitRate, cfg.FloodRate = *legitRate, *floodRate
		cfg.FloodMode, cfg.FloodWorkers = loadgen.FloodMode(*floodMode), *floodWork
		cfg.FloodConns, cfg.FloodPipeline, cfg.FloodHold = *floodConns, *floodPipe, *floodHold
		cfg.LegitNewConn, cfg.LegitRealtime = *legitNew, *legitRT
		mix, err := loadgen.ParseFloodMix(*floodMix)
		if err != nil {
			return usageError{fmt.Errorf("load: %w", confkey.Errorf("--flood-mix", "%v", err))}
		}
		cfg.FloodMix = mix
		if cfg.LegitRealtime > 0 {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("load: --legit-rt: find this program to start it again: %w", err)
			}
			cfg.ChildCommand = []string{self, "load", "--legit-child"}
		}
		if cfg.LegitSources, err = parsePrefix("legit-sources", *legitSrc); err != nil {
			return err
		}
		if cfg.FloodSources, err = parsePrefix("flood-sources", *floodSrc); err != nil {
			return err
		}
		switch *sources {
		case "auto":
			if cfg.Scenario != loadgen.ScenarioFlood {
				cfg.Sources = autoSources(cfg)
			}
		case "none", "":
		default:
			if cfg.Sources, err = parsePrefix("sources", *sources); err != nil {
				return err
			}
		}
		if err := cfg.Validate(); err != nil {
			return usageError{fmt.Errorf("load: %w", err)}
		}

		rep, err := loadgen.Run(ctx, cfg)
		if err != nil {
			return err
		}
		if *asJSON {
			return rep.WriteJSON(out.stdout)
		}
		return rep.WriteText(out.stdout)
	}
}

// parsePrefix parses a CIDR, or a single address as a prefix of one, by
// the rules of limit.ParsePrefix.
func parsePrefix(flagName, s string) (netip.Prefix, error) {
	p, err := limit.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, usageError{fmt.Errorf("load: %w", confkey.Errorf("--"+flagName, "%v", err))}
	}
	return p, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// autoSources spreads the workers over 127.1.0.0/16 for an IPv4 loopback
// target and uses ::1 for an IPv6 one; other targets keep the kernel's
// choice.
func autoSources(cfg loadgen.Config) netip.Prefix {
	host := ""
	switch cfg.Protocol {
	case loadgen.UDP:
		host, _, _ = net.SplitHostPort(cfg.UDP)
	case loadgen.HTTP:
		if u, err := url.Parse(cfg.HTTP); err == nil {
			host = u.Hostname()
		}
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil || !a.Unmap().IsLoopback():
		return netip.Prefix{}
	case a.Unmap().Is4():
		return netip.MustParsePrefix("127.1.0.0/16")
	}
	return netip.MustParsePrefix("::1/128")
}
