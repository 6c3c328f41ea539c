// Package publish turns a content directory into published torrents: every
// file that has stopped changing is hashed into a torrent (the configured
// kind, with the web seed and the trackers), registered, and listed in the
// RSS feed of its show and in the feed of everything; a file removed or
// replaced has its torrent revoked, with the reason, and its feed items
// taken out. warden publish does one pass; warden serve --publish polls
// continuously.
//
// It owns DATA/publish: state.json (what was published from which file,
// so a restart re-hashes nothing unchanged), torrents/ and feeds/, which
// package webseed serves. Every step is ordered so that a crash at any
// point is finished or undone on the next pass: a .torrent is written
// before the state names it, an item is written down (pending) before it
// is registered, a torrent is revoked before it leaves the state, and
// files nobody names are removed at start. state.json carries a checksum;
// a damaged one stops publishing with an error and is never reset.
//
// Creating torrents is package metainfo's; the feeds' format is package
// feed's; the registry is reached through the Registry interface.
package publish

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"warden/internal/atomicfile"
	"warden/internal/feed"
	"warden/internal/metainfo"
	"warden/internal/ratelog"
)

// The layout of the publish directory (DATA/publish).
const (
	stateFile   = "state.json"
	lockName    = "lock"
	torrentsDir = "torrents"
	feedsDir    = "feeds"
)

// Dirs returns the directories below dir (DATA/publish) that the web
// listener serves: the .torrent files and the feeds.
func Dirs(dir string) (torrents, feeds string) {
	return filepath.Join(dir, torrentsDir), filepath.Join(dir, feedsDir)
}

var errLocked = errors.New("locked")

// ErrBusy: another publisher (warden serve --publish, or a warden publish
// still running) holds the publish directory.
var ErrBusy = errors.New("another warden is publishing from this data directory")

// Options are what Open needs besides the [publish] config.
type Options struct {
	Config     Config
	ContentDir string
	// Dir is the publish directory, DATA/publish.
	Dir string
	// PublicURL is the web listener's base URL (no trailing slash): the
	// web seed of every torrent is PublicURL/content/SHOW/, and feeds and
	// enclosures point below it.
	PublicURL string
	// Announce are the trackers written into torrents, in tiers.
	Announce  [][]string
	Registry  Registry
	CreatedBy string
	Log       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats counts what a Publisher did since Open.
type Stats struct {
	// Items are published now (registered and in the feeds).
	Items int64 `json:"items"`
	// Settling are files seen that have not yet stopped changing.
	Settling  int64 `json:"settling"`
	Published int64 `json:"published"`
	Revoked   int64 `json:"revoked"`
	// Failed counts files that could not be published (reported in the
	// log once each) and registry calls that failed (tried again).
	Failed   int64  `json:"failed"`
	LastScan string `json:"last_scan"` // how long the last pass took
}

// Publisher publishes one content directory. Scan and Run must not be
// called concurrently; Stats may be called at any time.
type Publisher struct {
	opts    Options
	cfg     Config
	version metainfo.Version
	now     func() time.Time
	log     *slog.Logger
	errLog  *ratelog.Logger

	lock   *os.File
	st     *state
	byPath map[string]*item
	// failed remembers candidates that could not be published, with the
	// signature they had, so each is reported and retried once per change.
	failed map[string]string

	items, settling, published, revoked, failures atomic.Int64
	lastScan                                      atomic.Int64 // ns
}

// Open locks the publish directory (ErrBusy if another publisher holds
// it), reads the state (an error wrapping errDamaged names what is wrong
// with a damaged file), removes .torrent files no item names (left by a
// crash) and writes every feed from the state. It hashes nothing.
func Open(opts Options) (_ *Publisher, err error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	version, _ := metainfo.ParseVersion(opts.Config.MetaVersion)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		return nil, errors.New("publish: no registry")
	}
	if _, err := url.Parse(opts.PublicURL); err != nil || opts.PublicURL == "" {
		return nil, fmt.Errorf("publish: public URL %q: %v", opts.PublicURL, err)
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	log := opts.Log.With("component", "publish")
	p := &Publisher{
		opts: opts, cfg: opts.Config, version: version, now: opts.Now, log: log,
		errLog: ratelog.New(log, slog.LevelError, time.Minute, nil),
		failed: map[string]string{},
	}
	torrents, feeds := Dirs(opts.Dir)
	for _, d := range []string{opts.Dir, torrents, feeds} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
	if p.lock, err = os.OpenFile(filepath.Join(opts.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer func() {
		if err != nil {
			p.lock.Close()
		}
	}()
	if err := lockFile(p.lock); err != nil {
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("publish: %s: %w (warden serve --publish, or warden publish); stop it first", opts.Dir, ErrBusy)
		}
		return nil, fmt.Errorf("publish: lock %s: %w", opts.Dir, err)
	}
	if p.st, err = loadState(filepath.Join(opts.Dir, stateFile)); err != nil {
		return nil, fmt.Errorf("publish: %w; publishing stopped, the file is left as it is (move it aside to start over: every file is then hashed again)", err)
	}
	p.byPath = make(map[string]*item, len(p.st.Items))
	for _, it := range p.st.Items {
		p.byPath[it.Path] = it
	}
	if err := p.removeOrphans(); err != nil {
		return nil, err
	}
	if err := p.writeFeeds(p.allShows()...); err != nil {
		return nil, err
	}
	p.countItems()
	return p, nil
}

// Close releases the publish directory. It is safe to call once.
func (p *Publisher) Close() error { return p.lock.Close() }

// Stats returns the counters. It does not block.
func (p *Publisher) Stats() Stats {
	return Stats{
		Items: p.items.Load(), Settling: p.settling.Load(), Published: p.published.Load(),
		Revoked: p.revoked.Load(), Failed: p.failures.Load(),
		LastScan: time.Duration(p.lastScan.Load()).Round(time.Microsecond).String(),
	}
}

// Report is what one Scan did.
type Report struct {
	Published []string // paths published
	Revoked   []string // paths whose torrents were revoked
	// Settling counts files seen still changing (or changed within the
	// stability window); a later pass publishes them.
	Settling int
	// Problems are files that cannot be published as they are, each with
	// why, and registry calls that failed (tried again next pass).
	Problems []string
}

// Run scans every poll interval until ctx is done, and returns nil then.
// A pass that fails (the content directory unreadable, the state not
// written) is logged, at most once a minute, and tried again.
func (p *Publisher) Run(ctx context.Context) error {
	p.log.Info("watching", "content", p.opts.ContentDir, "settle", p.cfg.Settle.String(), "poll", p.cfg.Poll.String(), "items", len(p.st.Items))
	t := time.NewTicker(p.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := p.Scan(ctx); err != nil && ctx.Err() == nil {
			p.errLog.Log("publish pass failed; trying again", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan makes one pass over the content directory: it revokes what was
// removed or changed, registers what a crash left pending, and publishes
// every new file that has stopped changing, one after the other (each is
// in its feeds as soon as it is registered). It returns an error only for
// what stops the whole pass; problems with single files are in the
// Report.
func (p *Publisher) Scan(ctx context.Context) (Report, error) {
	start := time.Now()
	defer func() { p.lastScan.Store(int64(time.Since(start))) }()
	var rep Report
	cands, err := scanDir(p.opts.ContentDir)
	if err != nil {
		return rep, fmt.Errorf("publish: content directory: %w", err)
	}
	byPath := make(map[string]*candidate, len(cands))
	for i := range cands {
		byPath[cands[i].path] = &cands[i]
	}
	for path := range p.failed {
		if byPath[path] == nil {
			delete(p.failed, path)
		}
	}

	// What was published and is gone, changed, or still pending.
	for _, it := range slices.Clone(p.st.Items) {
		c := byPath[it.Path]
		switch {
		case c == nil:
			err = p.retire(ctx, it, "removed from the content directory", &rep)
		case c.err == nil && c.sig == it.Sig:
			if it.Pending {
				err = p.activate(ctx, it, &rep)
			}
		default:
			err = p.retire(ctx, it, "changed in the content directory", &rep)
		}
		if err != nil {
			return rep, err
		}
	}

	// What is new.
	var settling int
	for i := range cands {
		c := &cands[i]
		if p.byPath[c.path] != nil {
			continue
		}
		if errors.Is(c.err, fs.ErrNotExist) {
			settling++ // removed while listed: look again next pass
			continue
		}
		if c.err != nil {
			p.problem(&rep, c, c.err)
			continue
		}
		if p.now().Sub(c.sig.lastChange()) < p.cfg.Settle {
			settling++
			continue
		}
		if p.failed[c.path] == sigKey(c.sig) {
			continue // reported; tried again once it changes
		}
		if err := p.publish(ctx, c, &rep); err != nil {
			return rep, err
		}
	}
	rep.Settling = settling
	p.settling.Store(int64(settling))
	return rep, ctx.Err()
}

func sigKey(s signature) string {
	return fmt.Sprintf("%d/%d/%d/%d/%s", s.Size, s.MTime, s.CTime, s.Ino, s.Digest)
}

// problem reports once per signature a candidate that cannot be published.
func (p *Publisher) problem(rep *Report, c *candidate, err error) {
	rep.Problems = append(rep.Problems, c.path+": "+err.Error())
	key := sigKey(c.sig) + "/" + err.Error()
	if p.failed[c.path] == key {
		return
	}
	p.failed[c.path] = key
	p.failures.Add(1)
	p.log.Warn("not published", "path", c.path, "why", err.Error())
}

// publish hashes c into a torrent, writes it down, registers it and puts
// it in its feeds. A file that changed meanwhile is left for a later pass;
// one that cannot be made into a torrent is reported. The error is only
// for what stops the pass (the state or a feed not written, ctx done).
func (p *Publisher) publish(ctx context.Context, c *candidate, rep *Report) error {
	started := time.Now()
	disk := diskPath(p.opts.ContentDir, c.path)
	opts := metainfo.CreateOptions{
		Version:      p.version,
		PieceLength:  p.cfg.PieceSize,
		Trackers:     p.opts.Announce,
		WebSeeds:     []string{p.webSeed(c.show)},
		CreatedBy:    p.opts.CreatedBy,
		CreationDate: p.now().Unix(),
		Threads:      p.cfg.Threads,
	}
	if testHookCreate != nil {
		testHookCreate(c.path)
	}
	t, err := metainfo.Create(ctx, disk, opts)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, metainfo.ErrChanged), errors.Is(err, fs.ErrNotExist):
		return nil // still being written after all, or gone: next pass
	case err != nil:
		p.failed[c.path] = sigKey(c.sig)
		p.failures.Add(1)
		rep.Problems = append(rep.Problems, c.path+": "+err.Error())
		p.log.Warn("not published", "path", c.path, "why", err.Error())
		return nil
	}
	if now, err := p.resign(c); err != nil || now != c.sig {
		return nil // changed while hashed (times or identity): next pass
	}
	id := torrentID(t.Hashes)
	for _, other := range p.st.Items {
		if other.ID == id {
			p.problem(rep, c, fmt.Errorf("same torrent as %s (same name and contents): published once", other.Path))
			return nil
		}
	}
	data, err := t.Marshal()
	if err != nil {
		return fmt.Errorf("publish %s: %w", c.path, err)
	}
	torrents, _ := Dirs(p.opts.Dir)
	if err := atomicfile.WriteFile(filepath.Join(torrents, id+".torrent"), data); err != nil {
		return fmt.Errorf("publish %s: write torrent: %w", c.path, err)
	}
	it := &item{
		Path: c.path, Show: c.show, Dir: c.dir, Sig: c.sig, ID: id, Name: t.Info.Name,
		TorrentBytes: int64(len(data)), ContentBytes: t.Info.TotalLength(), Magnet: t.Magnet(),
		Published: p.now().UTC().Truncate(time.Second), Pending: true,
	}
	if t.Hashes.V1 != nil {
		it.V1 = t.Hashes.V1.String()
	}
	if t.Hashes.V2 != nil {
		it.V2 = t.Hashes.V2.String()
	}
	p.st.Items = append(p.st.Items, it)
	p.byPath[it.Path] = it
	if err := p.saveState(); err != nil {
		return err
	}
	hashed := time.Since(started)
	if err := p.activate(ctx, it, rep); err != nil {
		return err
	}
	if !it.Pending {
		p.log.Info("published", "path", it.Path, "info_hash", it.ID, "bytes", it.ContentBytes,
			"hashed_in", hashed.Round(time.Millisecond).String(), "total", time.Since(started).Round(time.Millisecond).String())
	}
	return nil
}

// testHookCreate, if set, is told of every file about to be hashed.
var testHookCreate func(path string)

// activate registers a pending item and puts it in its feeds. A registry
// that fails leaves it pending, to be tried again next pass.
func (p *Publisher) activate(ctx context.Context, it *item, rep *Report) error {
	h, err := it.hashes()
	if err != nil {
		return err
	}
	if err := p.opts.Registry.Register(ctx, h); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.failures.Add(1)
		rep.Problems = append(rep.Problems, it.Path+": not registered: "+err.Error())
		p.errLog.Log("torrent not registered; trying again next pass", slog.String("path", it.Path), slog.Any("err", err))
		return nil
	}
	it.Pending = false
	p.bump(it.Show)
	if err := p.saveState(); err != nil {
		return err
	}
	if err := p.writeFeeds(feedAll, it.Show); err != nil {
		return err
	}
	p.published.Add(1)
	p.countItems()
	rep.Published = append(rep.Published, it.Path)
	return nil
}

// retire revokes an item's torrent, takes it out of the state and its
// feeds, and removes its .torrent. A registry that fails leaves it as it
// is, to be tried again next pass.
func (p *Publisher) retire(ctx context.Context, it *item, why string, rep *Report) error {
	h, err := it.hashes()
	if err != nil {
		return err
	}
	reason := why + ": " + it.Path
	if err := p.opts.Registry.Revoke(ctx, h, reason); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.failures.Add(1)
		rep.Problems = append(rep.Problems, it.Path+": not revoked: "+err.Error())
		p.errLog.Log("torrent not revoked; trying again next pass", slog.String("path", it.Path), slog.Any("err", err))
		return nil
	}
	p.st.Items = slices.DeleteFunc(p.st.Items, func(x *item) bool { return x == it })
	delete(p.byPath, it.Path)
	p.bump(it.Show)
	if err := p.saveState(); err != nil {
		return err
	}
	if err := p.writeFeeds(feedAll, it.Show); err != nil {
		return err
	}
	torrents, _ := Dirs(p.opts.Dir)
	if err := os.Remove(filepath.Join(torrents, it.ID+".torrent")); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("revoked torrent file not removed", "file", it.ID+".torrent", "err", err)
	}
	p.revoked.Add(1)
	p.countItems()
	rep.Revoked = append(rep.Revoked, it.Path)
	p.log.Info("revoked", "path", it.Path, "info_hash", it.ID, "reason", reason)
	return nil
}

// resign reads c's signature again.
func (p *Publisher) resign(c *candidate) (signature, error) {
	disk := diskPath(p.opts.ContentDir, c.path)
	if c.dir {
		return dirSignature(disk)
	}
	st, err := os.Lstat(disk)
	if err != nil {
		return signature{}, err
	}
	return fileSignature(st), nil
}

func (it *item) hashes() (metainfo.Hashes, error) {
	h := metainfo.Hashes{Name: it.Name}
	if it.V1 != "" {
		v1, err := metainfo.ParseHash(it.V1)
		if err != nil {
			return h, fmt.Errorf("publish: state: %s: %w", it.Path, err)
		}
		h.V1 = v1.V1
	}
	if it.V2 != "" {
		v2, err := metainfo.ParseHash(it.V2)
		if err != nil || v2.V2 == nil {
			return h, fmt.Errorf("publish: state: %s: v2 hash %q", it.Path, it.V2)
		}
		h.V2 = v2.V2
	}
	return h, nil
}

// torrentID names a torrent: its v1 hash, or its whole v2 hash.
func torrentID(h metainfo.Hashes) string {
	if h.V1 != nil {
		return h.V1.String()
	}
	return hex.EncodeToString(h.V2[:])
}

// bump moves the lastBuildDate of show's feed and the feed of everything
// to now, and at least a second past their last one: readers compare the
// text, which counts whole seconds.
func (p *Publisher) bump(show string) {
	now := p.now().UTC().Truncate(time.Second)
	for _, k := range []string{feedAll, show} {
		t := now
		if prev := p.st.Feeds[k]; !t.After(prev) {
			t = prev.Add(time.Second)
		}
		p.st.Feeds[k] = t
	}
}

func (p *Publisher) saveState() error {
	data, err := p.st.marshal()
	if err != nil {
		return fmt.Errorf("publish: state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(p.opts.Dir, stateFile), data); err != nil {
		return fmt.Errorf("publish: write state: %w", err)
	}
	return nil
}

func (p *Publisher) countItems() {
	n := 0
	for _, it := range p.st.Items {
		if !it.Pending {
			n++
		}
	}
	p.items.Store(int64(n))
}

// removeOrphans removes .torrent files no item names, and temporary files,
// from the torrents directory: a crash between writing one and writing the
// state down leaves them.
func (p *Publisher) removeOrphans() error {
	torrents, _ := Dirs(p.opts.Dir)
	entries, err := os.ReadDir(torrents)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	named := make(map[string]bool, len(p.st.Items))
	for _, it := range p.st.Items {
		named[it.ID+".torrent"] = true
	}
	for _, e := range entries {
		if named[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(torrents, e.Name())); err != nil {
			return fmt.Errorf("publish: remove %s: %w", e.Name(), err)
		}
		p.log.Info("removed a torrent file no published item names", "file", e.Name())
	}
	return nil
}

// allShows lists every feed the state knows of: the feed of everything,
// every show with an item, and every show whose feed was ever built.
func (p *Publisher) allShows() []string {
	set := map[string]bool{feedAll: true}
	for _, it := range p.st.Items {
		set[it.Show] = true
	}
	for k := range p.st.Feeds {
		set[k] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// writeFeeds writes the feeds of shows (feedAll for the feed of
// everything) from the state.
func (p *Publisher) writeFeeds(shows ...string) error {
	_, dir := Dirs(p.opts.Dir)
	done := map[string]bool{}
	for _, show := range shows {
		if done[show] {
			continue
		}
		done[show] = true
		var b strings.Builder
		if err := feed.Write(&b, p.channel(show)); err != nil {
			return err
		}
		name := allName
		if show != feedAll {
			name = show
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name+".xml"), []byte(b.String())); err != nil {
			return fmt.Errorf("publish: write feed %s.xml: %w", name, err)
		}
	}
	return nil
}

// channel builds the feed of show from the state: its registered items,
// newest first, at most FeedItems of them.
func (p *Publisher) channel(show string) *feed.Channel {
	base := p.opts.PublicURL
	c := &feed.Channel{
		Title:       p.cfg.Title,
		Link:        base + "/content/",
		Description: "Everything published",
		SelfURL:     base + "/feeds/" + allName + ".xml",
		LastBuild:   p.st.Feeds[show],
	}
	if show != feedAll {
		c.Title = show
		c.Link = base + "/content/" + url.PathEscape(show) + "/"
		c.Description = "Episodes of " + show
		c.SelfURL = base + "/feeds/" + url.PathEscape(show) + ".xml"
	}
	if c.LastBuild.IsZero() {
		c.LastBuild = time.Unix(0, 0)
	}
	var items []*item
	for _, it := range p.st.Items {
		if !it.Pending && (show == feedAll || it.Show == show) {
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b *item) int {
		if c := b.Published.Compare(a.Published); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	items = items[:min(len(items), p.cfg.FeedItems)]
	for _, it := range items {
		fileURL := base + "/content/" + escapePath(it.Path)
		fi := feed.Item{
			Title:         baseName(it.Path),
			Published:     it.Published,
			GUID:          it.ID,
			Link:          fileURL,
			TorrentURL:    base + "/torrents/" + it.ID + ".torrent",
			TorrentLength: it.TorrentBytes,
			Magnet:        it.Magnet,
			ContentLength: it.ContentBytes,
		}
		if !it.Dir {
			fi.Media = &feed.Media{URL: fileURL, Type: mediaType(it.Path), Length: it.ContentBytes}
		}
		c.Items = append(c.Items, fi)
	}
	return c
}

// webSeed is the url-list of a torrent of show: its directory below
// /content/, to which clients add the torrent's name (BEP 19).
func (p *Publisher) webSeed(show string) string {
	if show == feedAll {
		return p.opts.PublicURL + "/content/"
	}
	return p.opts.PublicURL + "/content/" + url.PathEscape(show) + "/"
}

// escapePath escapes each element of a slash-separated path.
func escapePath(p string) string {
	elems := strings.Split(p, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return strings.Join(elems, "/")
}

// mediaType is a file's type by its extension, as the web seed sends it.
func mediaType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
