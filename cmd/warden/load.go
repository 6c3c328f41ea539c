package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"warden/internal/loadgen"
)

const loadUsage = `usage: warden load (--udp ADDR | --http URL) [flags]

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

Examples:
  warden load --torrents 1000 --print-hashes > whitelist
  warden load --udp 127.0.0.1:6969 --duration 30s
  warden load --http http://127.0.0.1:6969/announce --workers 64 --scenario mixed
  warden load --udp 127.0.0.1:6969 --rate 50000 --unknown-fraction 0.1 --json

Flags:
`

// runLoad runs "warden load": it parses args, runs the load and writes the
// report to stdout (a table, or JSON with --json). Usage goes to stderr.
// It returns flag.ErrHelp for -h, a usageError naming the bad flag for a
// mistake on the command line, or an error from loadgen.Run; failures of
// the target are in the report, not the error. It blocks until the run
// ends (at most --warmup + --duration + --timeout) or ctx is done.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := loadgen.DefaultConfig()
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	var (
		udpAddr     = fs.String("udp", "", "`ADDR` of the UDP tracker, host:port (BEP 15)")
		httpURL     = fs.String("http", "", "HTTP announce `URL`; scrapes go to its BEP 48 scrape URL")
		protocol    = fs.String("protocol", "", "udp or http; needed only when both --udp and --http are given")
		scenario    = fs.String("scenario", string(def.Scenario), "requests to send: announce, scrape or mixed")
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
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("load: unexpected argument %q", fs.Arg(0))}
	}
	if *printHashes {
		for _, h := range loadgen.GenerateHashes(*torrents) {
			fmt.Fprintln(stdout, h)
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
		fs.Usage()
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
	switch *sources {
	case "auto":
		cfg.Sources = autoSources(cfg)
	case "none", "":
	default:
		p, err := netip.ParsePrefix(*sources)
		if err != nil {
			a, aerr := netip.ParseAddr(*sources)
			if aerr != nil {
				return usageError{fmt.Errorf("load: --sources: %w", err)}
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.Sources = p
	}
	if err := cfg.Validate(); err != nil {
		return usageError{fmt.Errorf("load: %w", err)}
	}

	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
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
