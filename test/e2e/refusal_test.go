package e2e

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// refusalWindowEnv names an environment variable that sets how long
// TestRefusalCalmsClients counts each client's announces (a Go duration),
// for measurements longer than the default.
const refusalWindowEnv = "WARDEN_E2E_REFUSAL_WINDOW"

// refusalReplyEnv names an environment variable that sets warden's
// udp.refusal_reply in TestRefusalCalmsClients ("calm", the default, or
// "error"), to measure the clients against either; the policies checked
// follow it.
const refusalReplyEnv = "WARDEN_E2E_UDP_REFUSALS"

// defaultRefusalWindow is how long TestRefusalCalmsClients counts a
// client's announces, from the first one warden refuses. It must show a
// libtorrent client calmed over UDP: refused with an error only, it
// announces at +0, +29 and +84 s (its backoff); calmed, at +0 and +30 s,
// then not for a day. 90 s holds the third announce of the first with 6 s
// to spare, so a calm that fails shows as 3 announces, against at most 2.
const defaultRefusalWindow = 90 * time.Second

// firstRefusalTimeout bounds the wait for a client's first refused
// announce, from its start or from the revocation. libtorrent-based
// clients wait at least 60 s between accepted UDP announces, whatever the
// tracker's interval, and qBittorrent's forced reannounce waits for that.
const firstRefusalTimeout = 75 * time.Second

// revokeReason is what the revoked scenario tells clients.
const revokeReason = "e2e takedown"

// The intervals warden gives accepted announces in TestRefusalCalmsClients:
// short, so a client whose torrent is revoked announces again within
// seconds. Refusals keep warden's default interval of one day.
const (
	calmInterval    = 5 * time.Second
	calmMinInterval = 2 * time.Second
)

// calmConfig is warden's configuration in TestRefusalCalmsClients, with
// udp.refusal_reply set to reply.
func calmConfig(reply string) string {
	return fmt.Sprintf(`[tracker]
announce_interval = "%v"
min_announce_interval = "%v"
refusal_interval = "24h"
[udp]
refusal_reply = %q
`, calmInterval, calmMinInterval, reply)
}

// statsPoll is how often the test reads warden's counters; it is the
// resolution of the announce timelines.
const statsPoll = 200 * time.Millisecond

// A calmClient is a real client and what it is known to do when a tracker
// refuses it (measured; see docs/clients.md).
type calmClient struct {
	client
	protos []string

	// shortIntervals, if set, adjusts a run so that the client follows
	// calmConfig's short interval while its torrent is accepted.
	shortIntervals func(r *run)

	// reannounce, if set, makes the client announce now (a user pressing
	// "reannounce"), for a client that will not follow a short interval.
	reannounce func(p *proc, r run) error

	// messages returns the tracker errors the client shows, from its own
	// output or UI, so the test can check that the refusal reached it.
	messages func(p *proc, r run) []string

	// libtorrentBased is set for clients built on libtorrent 2.0, which
	// show a UDP tracker error without its text (libtorrent 2.0.8 reads the
	// text from the start of the packet, so it ends at the first zero byte
	// of the action field), and wait at least 60 s between accepted UDP
	// announces whatever the tracker's interval.
	libtorrentBased bool

	// allowed returns the most refused announces the client's retry policy
	// allows within the window, counting from its first refused announce,
	// and describes that policy.
	allowed func(sc refusalCase) (int, string)
}

// upTo counts the retries a backoff schedule allows within window: one for
// the first refusal, plus one per entry of offsets (the earliest times of
// the later retries, counted from the first refusal) within window.
func upTo(window time.Duration, offsets ...time.Duration) int {
	n := 1
	for _, o := range offsets {
		if o <= window {
			n++
		}
	}
	return n
}

// every returns the offsets of retries made every period, with 10% slack,
// up to window.
func every(period, window time.Duration) []time.Duration {
	var out []time.Duration
	for o := period * 9 / 10; o <= window; o += period * 9 / 10 {
		out = append(out, o)
	}
	return out
}

// libtorrentUDPBackoff is when a libtorrent 2.0 client retries after UDP
// error actions, counted from the first: a UDP error carries no interval,
// so libtorrent uses its own backoff (measured: 29 s, then 55 s, then
// 117 s after the previous), here with some slack.
var libtorrentUDPBackoff = []time.Duration{25 * time.Second, 75 * time.Second, 180 * time.Second, 380 * time.Second}

// A refusalCase is what a client's retry policy depends on.
type refusalCase struct {
	proto   string        // "http" or "udp"
	revoked bool          // the torrent was accepted, then revoked
	window  time.Duration // how long announces are counted, from the first refused
	calm    bool          // UDP refusals after the first are calm announce replies
}

// libtorrentAllowed is the retry policy of libtorrent 2.0, in ltclient.py
// and in qBittorrent.
func libtorrentAllowed(sc refusalCase) (int, string) {
	switch {
	case sc.proto == "http":
		return 1, "honours the failure's interval (1 day): one announce"
	case sc.calm:
		return upTo(sc.window, libtorrentUDPBackoff[0]), "the UDP error has no interval: one retry on its backoff (~30 s), answered with the refusal interval (1 day), which it honours: two announces"
	}
	return upTo(sc.window, libtorrentUDPBackoff...), "no interval in a UDP error: its own backoff, retries after ~30 s, ~55 s, ~2 min"
}

// refusalClients are the clients TestRefusalCalmsClients runs.
var refusalClients = []calmClient{
	{
		client: libtorrent,
		protos: []string{"http", "udp"},
		shortIntervals: func(r *run) {
			// libtorrent's own floor under the interval is 300 s. Over UDP
			// it also waits at least 60 s, whatever this says.
			r.clientArgs = append(r.clientArgs, "--min-announce-interval", "1")
		},
		messages: func(p *proc, r run) []string {
			return logMatchesAll(p, `(?m)^TRACKER_ERROR: (.*)$`)
		},
		libtorrentBased: true,
		allowed:         libtorrentAllowed,
	},
	{
		client: aria2,
		protos: []string{"http", "udp"},
		messages: func(p *proc, r run) []string {
			return logMatchesAll(p, `Tracker returned failure reason: ([^\n]*)|UDPT received ERROR reply .*error_string=([^\n]*)`)
		},
		allowed: func(sc refusalCase) (int, string) {
			// aria2 never reads the interval of a failure. It announces
			// at the min interval of its last accepted answer (BEP 15
			// has none: the interval) until its peer check, every 10 s,
			// finds no peer connection and sets that min interval to its
			// default, 120 s.
			const period = 120 * time.Second
			const policy = "ignores the failure's interval: announces every 120 s while it has no peers"
			if !sc.revoked {
				return upTo(sc.window, every(period, sc.window)...), policy
			}
			last := calmMinInterval
			if sc.proto == "udp" {
				last = calmInterval
			}
			const peerCheck = 12 * time.Second // 10 s, and slack
			quick := int((peerCheck + last - 1) / last)
			return quick + len(every(period, sc.window)), fmt.Sprintf("%s, and at the last accepted answer's min interval (%v) in its first 10 s", policy, last)
		},
	},
	{
		client: transmission,
		protos: []string{"http", "udp"},
		messages: func(p *proc, r run) []string {
			return logMatchesAll(p, `Tracker error: "([^\n]*)"`)
		},
		allowed: func(sc refusalCase) (int, string) {
			if sc.proto == "udp" && sc.calm {
				return upTo(sc.window, 18*time.Second), "its own backoff after the error (20 s), then the refusal interval of the calm announce reply (1 day)"
			}
			return upTo(sc.window, 18*time.Second, 5*time.Minute), "ignores the failure's interval: its own backoff, retries after 20 s, then ~5-15 min, ~30 min"
		},
	},
	{
		client:     qbittorrent,
		protos:     []string{"http", "udp"},
		reannounce: qbReannounce,
		messages:   qbTrackerMessages,
		// For a UDP error, qBittorrent shows libtorrent's description,
		// "tracker sent a failure message", and no message.
		libtorrentBased: true,
		allowed:         libtorrentAllowed,
	},
}

// logMatchesAll returns, for every match of re in p's log, its first
// non-empty group (or "" if none).
func logMatchesAll(p *proc, re string) []string {
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllSubmatch(p.log(), -1) {
		text := ""
		for _, g := range m[1:] {
			if len(g) > 0 {
				text = string(g)
				break
			}
		}
		out = append(out, text)
	}
	return out
}

// TestRefusalCalmsClients runs real clients against warden in allowlist
// mode and counts, at the tracker, how often they announce once refused:
//
//   - unregistered: the client starts on a torrent warden does not track;
//   - revoked: the client starts on a registered torrent, warden accepts
//     its announce with a 5 s interval (calmConfig), and the torrent is
//     revoked through the admin API while the client runs.
//
// In each case the client must show warden's message, and from its first
// refused announce on, must announce no more often within the window than
// its known retry policy allows (calmClient.allowed): libtorrent over HTTP
// exactly once, as the refusal's one-day interval asks, and over UDP, with
// warden's default calm refusals (udp.refusal_reply), at most twice: the
// error, and one retry on its backoff, which is answered with an announce
// reply carrying the one-day interval.
//
// Every scenario runs at the same time, each with its own warden, so the
// test takes about one window plus the slowest first refusal, whatever
// the number of clients. The scenarios run in goroutines started here, not
// in parallel subtests, which -parallel (GOMAXPROCS by default) would run
// a few at a time; each scenario's result is then checked in its own
// subtest.
func TestRefusalCalmsClients(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs real BitTorrent clients; skipped in -short mode")
	}
	requireLibtorrent(t) // mktorrent.py needs it
	reply := cmp.Or(os.Getenv(refusalReplyEnv), "calm")
	if reply != "calm" && reply != "error" {
		t.Fatalf("%s=%q: want calm or error", refusalReplyEnv, reply)
	}
	window := defaultRefusalWindow
	if v := os.Getenv(refusalWindowEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 10s", refusalWindowEnv, v)
		}
		window = d
	}

	dir := t.TempDir()
	payload := filepath.Join(dir, payloadName)
	if err := os.WriteFile(payload, bytes.Repeat([]byte("warden refusal e2e\n"), 20000), 0o644); err != nil {
		t.Fatal(err)
	}

	var scenarios []*calmRun
	for _, c := range refusalClients {
		for _, proto := range c.protos {
			for _, revoked := range []bool{false, true} {
				scenarios = append(scenarios, &calmRun{c: c, proto: proto, revoked: revoked, window: window, reply: reply})
			}
		}
	}
	// The slowest scenarios first: a libtorrent-based client makes its
	// next UDP announce, the one refused, a minute after the accepted one.
	slow := func(sc *calmRun) bool { return sc.revoked && sc.proto == "udp" && sc.c.libtorrentBased }
	sorted := slices.Clone(scenarios)
	slices.SortStableFunc(sorted, func(a, b *calmRun) int {
		switch {
		case slow(a) && !slow(b):
			return -1
		case slow(b) && !slow(a):
			return 1
		}
		return 0
	})
	// Start every scenario whose client is installed; a missing client is
	// reported in its subtest below.
	start := time.Now()
	var wg sync.WaitGroup
	for _, sc := range sorted {
		if sc.missing = sc.c.installed(); sc.missing != nil {
			continue
		}
		sc.setUp(t, payload)
		wg.Go(sc.watch)
	}
	t.Logf("%d scenarios started in %v", len(scenarios), time.Since(start).Round(time.Millisecond))
	wg.Wait()
	// Stop the clients all at once, then their trackers, rather than one
	// by one in the cleanups: some clients take seconds to tell their
	// tracker they stopped.
	for _, sc := range scenarios {
		if sc.p != nil {
			wg.Go(sc.p.stop)
		}
	}
	wg.Wait()
	for _, sc := range scenarios {
		if sc.w != nil {
			wg.Go(sc.w.stop)
		}
	}
	wg.Wait()
	for _, sc := range scenarios {
		t.Run(sc.name(), sc.check)
	}
}

// A calmRun is one scenario of TestRefusalCalmsClients: one client, one
// tracker protocol, one warden, and an unregistered or revoked torrent.
type calmRun struct {
	c       calmClient
	proto   string
	revoked bool
	window  time.Duration
	reply   string // warden's udp.refusal_reply
	missing error  // the client is not installed

	w       *wardenProc
	p       *proc
	r       run
	want    string // the refusal text warden sends
	sampler *announceSampler

	// Set by watch.
	start     time.Time // the client started
	revokedAt time.Time // the torrent was revoked; zero if unregistered
	refusedAt time.Time // warden refused the client's first announce
	shown     []string  // the tracker errors the client showed
	err       error     // what went wrong while watching
}

func (sc *calmRun) name() string {
	what := "unregistered"
	if sc.revoked {
		what = "revoked"
	}
	return sc.c.name + "/" + sc.proto + "/" + what
}

// setUp starts the scenario's warden and client. It returns once the
// client runs; a client that quits by itself at start (quitsAtStart) is
// started again.
func (sc *calmRun) setUp(t *testing.T, payload string) {
	t.Helper()
	logDir := filepath.Join(testLogDir(t), strings.ReplaceAll(sc.name(), "/", "_"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sc.w = startWardenWith(t, wardenOpts{admin: true, config: calmConfig(sc.reply), logDir: logDir})
	url := map[string]string{"http": sc.w.httpURL, "udp": sc.w.udpURL}[sc.proto]
	torrent := filepath.Join(logDir, "test.torrent")
	ih := makeTorrent(t, payload, torrent, url)
	sc.want = "torrent not registered on this tracker"
	if sc.revoked {
		sc.w.register(t, ih, "refusal e2e")
		sc.want = "revoked: " + revokeReason
	}
	sc.r = run{role: leecher, proto: sc.proto, trackerURL: url, infoHash: ih, torrent: torrent,
		dataDir: t.TempDir(), logDir: logDir, lifetime: firstRefusalTimeout + sc.window + 2*time.Minute}
	if sc.revoked && sc.c.shortIntervals != nil {
		sc.c.shortIntervals(&sc.r)
	}
	sc.sampler = startSampler(sc.w, sc.proto)
	t.Cleanup(sc.sampler.stop)
	const startAttempts = 3
	for attempt := 1; ; attempt++ {
		sc.start = time.Now()
		sc.p = sc.c.start(t, sc.r)
		if !sc.c.quitsAtStart || attempt == startAttempts {
			return
		}
		// Wait for its first announce, or for it to quit.
		deadline := time.Now().Add(readyTimeout)
		for len(sc.sampler.events()) == 0 && !sc.p.exited() && time.Now().Before(deadline) {
			time.Sleep(statsPoll)
		}
		if !sc.p.exited() || sc.p.waitErr != nil {
			return
		}
		t.Logf("%s: %s quit by itself at start (attempt %d); starting it again", sc.name(), sc.p.name, attempt)
	}
}

// watch runs the scenario: it revokes the torrent once warden has
// accepted the client (revoked scenario), waits for the first refused
// announce, and watches the client for the window after it. It runs in its
// own goroutine, so it records what goes wrong in sc.err instead of
// failing the test.
func (sc *calmRun) watch() {
	defer sc.sampler.stop()
	from := sc.start
	if sc.revoked {
		if sc.err = sc.revokeWhenAccepted(); sc.err != nil {
			return
		}
		from = sc.revokedAt
	}
	sc.err = sc.waitUntil(from.Add(firstRefusalTimeout), func() bool {
		evs := sc.sampler.events()
		i := slices.IndexFunc(evs, func(e announceEvent) bool { return e.kind == refused })
		if i < 0 {
			return false
		}
		sc.refusedAt = evs[i].at
		return true
	})
	if sc.err != nil || sc.refusedAt.IsZero() {
		return
	}
	sc.err = sc.waitUntil(sc.refusedAt.Add(sc.window), func() bool { return false })
	sc.sampler.stop()
	sc.shown = dedupe(sc.c.messages(sc.p, sc.r))
}

// waitUntil polls until cond reports true or deadline passes. It returns
// an error if the client exits first.
func (sc *calmRun) waitUntil(deadline time.Time, cond func() bool) error {
	for !cond() && time.Now().Before(deadline) {
		if sc.p.exited() {
			return fmt.Errorf("%s %s", sc.p.name, sc.p.status())
		}
		time.Sleep(statsPoll)
	}
	return nil
}

// dedupe returns list without repeats, in first-seen order.
func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// acceptTimeout bounds how long a client may take to make its first
// accepted announce.
const acceptTimeout = 30 * time.Second

// revokeWhenAccepted waits until warden has accepted an announce of the
// client, then revokes the torrent and, for a client that needs it, forces
// its next announce.
func (sc *calmRun) revokeWhenAccepted() error {
	deadline := time.Now().Add(acceptTimeout)
	for !slices.ContainsFunc(sc.sampler.events(), func(e announceEvent) bool { return e.kind == accepted }) {
		if sc.p.exited() {
			return fmt.Errorf("%s %s before warden accepted an announce", sc.p.name, sc.p.status())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warden accepted no announce in %v", acceptTimeout)
		}
		time.Sleep(statsPoll)
	}
	sc.revokedAt = time.Now()
	if err := sc.w.revoke(sc.r.infoHash, revokeReason); err != nil {
		return err
	}
	if sc.c.reannounce != nil {
		if err := sc.c.reannounce(sc.p, sc.r); err != nil {
			return fmt.Errorf("force a reannounce: %w", err)
		}
	}
	return nil
}

// check reports the scenario's timeline and checks it against the client's
// retry policy.
func (sc *calmRun) check(t *testing.T) {
	if sc.missing != nil {
		missing(t, "%s: %v", sc.c.name, sc.missing)
	}
	evs := sc.sampler.events()
	t.Logf("seen by warden, from the client's start: %s", timeline(evs, sc.start))
	if sc.revoked {
		t.Logf("torrent revoked at +%.1fs", sc.revokedAt.Sub(sc.start).Seconds())
	}
	if sc.sampler.failed > 0 {
		t.Logf("%d polls of warden's counters failed; the last: %v", sc.sampler.failed, sc.sampler.err)
	}
	if sc.sampler.err != nil {
		t.Errorf("reading warden's counters at the end of the window: %v", sc.sampler.err)
	}
	if sc.err != nil {
		t.Fatal(sc.err)
	}
	if sc.refusedAt.IsZero() {
		t.Fatalf("warden refused no announce within %v", firstRefusalTimeout)
	}
	end := sc.refusedAt.Add(sc.window)
	var inWindow []announceEvent
	for _, e := range evs {
		switch {
		case e.kind == accepted && sc.revoked && e.at.After(sc.revokedAt.Add(2*statsPoll)): // one in flight at the revocation may pass
			t.Errorf("warden accepted an announce at +%.1fs, after the torrent was revoked", e.at.Sub(sc.start).Seconds())
		case e.kind == refused && !e.at.Before(sc.refusedAt) && !e.at.After(end):
			inWindow = append(inWindow, e)
		}
	}
	limit, policy := sc.c.allowed(refusalCase{proto: sc.proto, revoked: sc.revoked, window: sc.window, calm: sc.reply == "calm"})
	t.Logf("%d refused announces in the %v from the first (udp.refusal_reply = %q); %s: %s: at most %d",
		len(inWindow), sc.window, sc.reply, sc.c.name, policy, limit)
	if len(inWindow) > limit {
		t.Errorf("%d refused announces in %v, want at most %d", len(inWindow), sc.window, limit)
	}

	t.Logf("the client showed: %q", sc.shown)
	switch {
	case sc.proto == "udp" && sc.c.libtorrentBased:
		// The error must show; its text cannot.
		if len(sc.shown) == 0 {
			t.Errorf("the client showed no tracker error")
		}
	case !slices.ContainsFunc(sc.shown, func(s string) bool { return strings.Contains(s, sc.want) }):
		t.Errorf("the client did not show warden's message %q", sc.want)
	}
}

// timeline formats events as "+1.2s accepted, +3.4s refused".
func timeline(evs []announceEvent, start time.Time) string {
	if len(evs) == 0 {
		return "nothing"
	}
	parts := make([]string, len(evs))
	for i, e := range evs {
		parts[i] = fmt.Sprintf("+%.1fs %s", e.at.Sub(start).Seconds(), e.kind)
	}
	return strings.Join(parts, ", ")
}

// An eventKind says what warden answered.
type eventKind int

const (
	accepted      eventKind = iota // an announce answered with peers
	refused                        // an announce answered with a failure or error
	scraped                        // a scrape answered with counts
	scrapeRefused                  // a scrape answered with a failure or error
	numKinds
)

func (k eventKind) String() string {
	return [...]string{"accepted", "refused", "scrape", "scrape refused"}[k]
}

// An announceEvent is one request warden answered.
type announceEvent struct {
	at   time.Time // when the test saw warden's counter move (within statsPoll)
	kind eventKind
}

// announceSampler polls a warden's request counters for one protocol and
// turns their changes into announceEvents. Warden logs nothing per
// request, so its counters are how the test sees each one.
type announceSampler struct {
	w     *wardenProc
	proto string
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu     sync.Mutex // guards the fields below
	evs    []announceEvent
	last   [numKinds]int // requests of each kind so far
	failed int           // polls that could not read the counters
	err    error         // why the last poll failed, or nil; read after done
}

func startSampler(w *wardenProc, proto string) *announceSampler {
	s := &announceSampler{w: w, proto: proto, quit: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *announceSampler) run() {
	defer close(s.done)
	tick := time.NewTicker(statsPoll)
	defer tick.Stop()
	for {
		s.poll()
		select {
		case <-s.quit:
			s.poll() // the last requests of the window
			return
		case <-tick.C:
		}
	}
}

func (s *announceSampler) poll() {
	st, err := s.w.stats()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// A poll that fails (a slow machine) only makes the timeline
	// coarser, since the counters only grow; the last one must succeed.
	s.err = err
	if err != nil {
		s.failed++
		return
	}
	cur := [numKinds]int{st.HTTP.AnnouncesOK, st.HTTP.AnnouncesFailed, st.HTTP.ScrapesOK, st.HTTP.ScrapesFailed}
	if s.proto == "udp" {
		cur = [numKinds]int{st.UDP.AnnouncesOK, st.UDP.AnnouncesFailed, st.UDP.ScrapesOK, st.UDP.ScrapesFailed}
	}
	for k := range numKinds {
		for range cur[k] - s.last[k] {
			s.evs = append(s.evs, announceEvent{at: now, kind: k})
		}
	}
	s.last = cur
}

// events returns the requests seen so far.
func (s *announceSampler) events() []announceEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

// stop ends sampling after one last poll. It is idempotent.
func (s *announceSampler) stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}

// qbReannounce asks qBittorrent's Web UI to announce the torrent now.
func qbReannounce(p *proc, r run) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(p.webUI+"/api/v2/torrents/reannounce", "application/x-www-form-urlencoded",
		strings.NewReader("hashes="+r.infoHash))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /api/v2/torrents/reannounce: %s", resp.Status)
	}
	return nil
}

// qbTrackerMessages returns the messages qBittorrent's Web UI shows for
// the torrent's tracker.
func qbTrackerMessages(p *proc, r run) []string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.webUI + "/api/v2/torrents/trackers?hash=" + r.infoHash)
	if err != nil {
		return []string{"(Web UI: " + err.Error() + ")"}
	}
	defer resp.Body.Close()
	var trackers []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
		Msg    string `json:"msg"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&trackers); err != nil {
		return []string{"(Web UI: " + err.Error() + ")"}
	}
	var out []string
	for _, tr := range trackers {
		if tr.URL == r.trackerURL {
			out = append(out, fmt.Sprintf("status %d: %s", tr.Status, tr.Msg))
		}
	}
	return out
}
