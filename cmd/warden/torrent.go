package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"warden/internal/admin"
	"warden/internal/atomicfile"
	"warden/internal/metainfo"
)

var torrentCommand = &command{
	name:    "torrent",
	summary: "create, show and verify .torrent files; print magnet links",
	help: `
Makes .torrent files of your own content and checks them. create hashes a
file or directory on every core, reading the data once for v1 and v2, and
writes a hybrid torrent (BEP 52 with BEP 47 pads, as libtorrent 2.0 lays it
out) unless --meta-version says otherwise. Same data and flags give the same
bytes, whatever the thread count.`,
	sub: []*command{
		{name: "create", args: "PATH [-o FILE] [flags]", summary: "make a .torrent of a file or directory", setup: setupTorrentCreate,
			help: `
--announce may be given many times; URLs separated by commas in one
--announce form one tier (BEP 12), tried in the order given. The piece size
is automatic unless given: the smallest power of two from 16 KiB to 16 MiB
that cuts the data into at most 2048 pieces. Hybrid and v2 torrents do not
load in Transmission 3; make a --meta-version 1 torrent for it.`},
		{name: "show", args: "FILE [--json]", summary: "print what a .torrent holds", setup: setupTorrentShow},
		{name: "verify", args: "FILE PATH", summary: "check data against a .torrent; exit 1 if any piece is bad", setup: setupTorrentVerify,
			help: `
PATH is the file of a single-file torrent, or the directory of a multi-file
one (named as the torrent is, or not).`},
		{name: "magnet", args: "FILE", summary: "print a .torrent's magnet link", setup: setupTorrentMagnet},
	},
}

// tierFlag collects --announce: each use is a tier, its comma-separated
// URLs the tier's trackers.
type tierFlag [][]string

func (t *tierFlag) String() string { return "" }
func (t *tierFlag) Set(s string) error {
	var tier []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if err := checkURL(u, "http", "https", "udp", "wss"); err != nil {
			return err
		}
		tier = append(tier, u)
	}
	if len(tier) == 0 {
		return errors.New("empty tracker URL")
	}
	*t = append(*t, tier)
	return nil
}

// listFlag collects a repeated flag; commas separate values too.
type listFlag []string

func (l *listFlag) String() string { return "" }
func (l *listFlag) Set(s string) error {
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if err := checkURL(u, "http", "https"); err != nil {
				return err
			}
			*l = append(*l, u)
		}
	}
	return nil
}

func checkURL(s string, schemes ...string) error {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || rest == "" {
		return fmt.Errorf("%q: not a URL", s)
	}
	for _, sc := range schemes {
		if strings.EqualFold(scheme, sc) {
			return nil
		}
	}
	return fmt.Errorf("%q: want a %s URL", s, strings.Join(schemes, ", "))
}

// parseSize reads a byte count, with an optional K, M or G (powers of 1024,
// with or without "iB").
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(num)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		for _, form := range []string{suffix + "ib", suffix} {
			if strings.HasSuffix(lower, form) {
				num, mult = num[:len(num)-len(form)], m
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive number of bytes, e.g. 1048576 or 1M", s)
	}
	return n * mult, nil
}

func setupTorrentCreate(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	out := fs.String("o", "", "write the .torrent to `file` (default NAME.torrent in the current directory)")
	force := fs.Bool("force", false, "overwrite the -o file if it exists")
	version := fs.String("meta-version", "hybrid", "`version`: 1, 2 or hybrid")
	pieceSize := fs.String("piece-size", "", "piece size in `bytes`, a power of two from 16K to 64M (default automatic)")
	var trackers tierFlag
	fs.Var(&trackers, "announce", "tracker `URL`s; repeat for more tiers, commas within a tier")
	var webSeeds listFlag
	fs.Var(&webSeeds, "web-seed", "web seed `URL` (BEP 19); repeatable")
	private := fs.Bool("private", false, "set the private flag (BEP 27): clients use only the trackers")
	comment := fs.String("comment", "", "comment `text`")
	source := fs.String("source", "", "source `text`, written into the info dictionary (changes the hashes)")
	name := fs.String("name", "", "torrent `name` (default the base name of PATH)")
	date := fs.String("date", "", "creation date as Unix `seconds`, or none (default now)")
	threads := fs.Int("threads", 0, "hashing `threads` (default one per core)")
	attrs := fs.Bool("attributes", false, "mark executable files with BEP 47 attr x")
	register := fs.Bool("register", false, "register the torrent with the running tracker (see --admin, --data)")
	return func(ctx context.Context, o streams, args []string) error {
		if err := wantArgs("torrent create", args, 1, "one PATH"); err != nil {
			return err
		}
		opts := metainfo.CreateOptions{
			Trackers: trackers, WebSeeds: webSeeds, Private: *private, Comment: *comment,
			Source: *source, Name: *name, Threads: *threads, Attributes: *attrs,
			CreatedBy: "warden " + versionString(),
		}
		var err error
		if opts.Version, err = metainfo.ParseVersion(*version); err != nil {
			return usageError{fmt.Errorf("torrent create: --%w", err)}
		}
		if *pieceSize != "" {
			if opts.PieceLength, err = parseSize(*pieceSize); err != nil {
				return usageError{fmt.Errorf("torrent create: --piece-size %w", err)}
			}
		}
		switch *date {
		case "":
			opts.CreationDate = time.Now().Unix()
		case "none":
		default:
			if opts.CreationDate, err = strconv.ParseInt(*date, 10, 64); err != nil || opts.CreationDate <= 0 {
				return usageError{fmt.Errorf("torrent create: --date %q: want Unix seconds or none", *date)}
			}
		}
		if *threads < 0 {
			return usageError{errors.New("torrent create: --threads must be at least 1")}
		}
		var client *admin.Client
		if *register { // before hashing, so a missing token costs no time
			if client, err = a.client(); err != nil {
				return err
			}
		}
		return torrentCreate(ctx, o, args[0], *out, *force, opts, client, a.json)
	}
}

func torrentCreate(ctx context.Context, o streams, path, out string, force bool, opts metainfo.CreateOptions, client *admin.Client, asJSON bool) error {
	if out == "" {
		out = (opts.Name)
		if out == "" {
			out = filepath.Base(filepath.Clean(path))
		}
		out += ".torrent"
	}
	if err := checkOutside(path, out); err != nil {
		return err
	}
	if !force {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("torrent create: %s exists (give --force to overwrite it)", out)
		}
	}
	bar := newProgressBar(o.stderr, "hashing")
	opts.Progress = bar.update
	t, err := metainfo.Create(ctx, path, opts)
	bar.finish()
	if err != nil {
		return fmt.Errorf("torrent create: %w", err)
	}
	data, err := t.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(out, data); err != nil {
		return fmt.Errorf("torrent create: %w", err)
	}
	if opts.Version != metainfo.V1 {
		fmt.Fprintf(o.stderr, "warning: a %s torrent does not load in Transmission 3 (it reads v1 torrents only); make one with --meta-version 1 for it\n", opts.Version)
	}
	if client != nil {
		if err := registryAdd(ctx, client, []admin.AddTorrent{addTorrentOf(t.Hashes)}, asJSON, o.stdout); err != nil {
			return fmt.Errorf("torrent create: %s written, but not registered: %w", out, err)
		}
	}
	if asJSON {
		return writeJSONTo(o.stdout, createdJSON{File: out, showJSON: showOf(t)})
	}
	fmt.Fprintf(o.stdout, "wrote %s: %s, %s in %d pieces of %s\n", out, describeVersion(&t.Info),
		humanBytes(t.Info.TotalLength()), len(t.Info.Pieces)/20+pieceCountV2(t), humanBytes(t.Info.PieceLength))
	printHashes(o.stdout, t)
	return nil
}

func addTorrentOf(h metainfo.Hashes) admin.AddTorrent {
	at := admin.AddTorrent{Name: h.Name}
	if h.V1 != nil {
		at.V1 = h.V1.String()
	}
	if h.V2 != nil {
		at.V2 = h.V2.String()
	}
	return at
}

// pieceCountV2 is the piece count of a v2-only torrent, which has no v1
// pieces to count.
func pieceCountV2(t *metainfo.Torrent) int {
	if t.Info.V1 {
		return 0
	}
	n := 0
	for _, f := range t.Info.Files {
		n += int((f.Length + t.Info.PieceLength - 1) / t.Info.PieceLength)
	}
	return n
}

func describeVersion(in *metainfo.Info) string {
	switch {
	case in.V1 && in.V2:
		return "hybrid"
	case in.V2:
		return "v2"
	}
	return "v1"
}

func printHashes(w io.Writer, t *metainfo.Torrent) {
	if t.Hashes.V1 != nil {
		fmt.Fprintf(w, "info hash v1: %s\n", t.Hashes.V1)
	}
	if t.Hashes.V2 != nil {
		fmt.Fprintf(w, "info hash v2: %s (trackers see %s)\n", t.Hashes.V2, t.Hashes.V2.Truncate())
	}
	fmt.Fprintf(w, "magnet: %s\n", t.Magnet())
}

// checkOutside refuses an output file inside the input, which would be
// hashed while it is written, or overwrite the input.
func checkOutside(in, out string) error {
	absIn, err := filepath.Abs(in)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(absIn); err == nil {
		absIn = real
	}
	if real, err := filepath.EvalSymlinks(filepath.Dir(absOut)); err == nil {
		absOut = filepath.Join(real, filepath.Base(absOut))
	}
	if absOut == absIn || strings.HasPrefix(absOut, absIn+string(filepath.Separator)) {
		return usageError{fmt.Errorf("torrent create: the output %s is inside the input %s; write it elsewhere with -o", out, in)}
	}
	return nil
}

func setupTorrentShow(fs *flag.FlagSet) runFunc {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, o streams, args []string) error {
		if err := wantArgs("torrent show", args, 1, "one FILE"); err != nil {
			return err
		}
		t, err := metainfo.ReadTorrent(args[0])
		if err != nil {
			return fmt.Errorf("torrent show: %w", err)
		}
		if *asJSON {
			return writeJSONTo(o.stdout, showOf(t))
		}
		return printTorrent(o.stdout, t)
	}
}

// showJSON is `torrent show --json`.
type showJSON struct {
	Name         string     `json:"name"`
	MetaVersion  string     `json:"meta_version"`
	InfoHashV1   string     `json:"info_hash_v1,omitempty"`
	InfoHashV2   string     `json:"info_hash_v2,omitempty"`
	PieceLength  int64      `json:"piece_length"`
	Pieces       int        `json:"pieces"`
	TotalLength  int64      `json:"total_length"`
	Files        []fileJSON `json:"files"`
	Announce     [][]string `json:"announce"`
	URLList      []string   `json:"url_list"`
	Private      bool       `json:"private"`
	Source       string     `json:"source,omitempty"`
	Comment      string     `json:"comment,omitempty"`
	CreatedBy    string     `json:"created_by,omitempty"`
	CreationDate int64      `json:"creation_date,omitempty"`
	Magnet       string     `json:"magnet"`
}

type fileJSON struct {
	Path       string `json:"path"`
	Length     int64  `json:"length"`
	Attr       string `json:"attr,omitempty"`
	PiecesRoot string `json:"pieces_root,omitempty"`
}

type createdJSON struct {
	File string `json:"file"`
	showJSON
}

func showOf(t *metainfo.Torrent) showJSON {
	s := showJSON{
		Name: t.Info.Name, MetaVersion: describeVersion(&t.Info), PieceLength: t.Info.PieceLength,
		Pieces:      len(t.Info.Pieces)/20 + pieceCountV2(t),
		TotalLength: t.Info.TotalLength(), Announce: t.Trackers(), URLList: t.URLList,
		Private: t.Info.Private, Source: t.Info.Source, Comment: t.Comment, CreatedBy: t.CreatedBy,
		CreationDate: t.CreationDate, Magnet: t.Magnet(), Files: []fileJSON{},
	}
	if s.Announce == nil {
		s.Announce = [][]string{}
	}
	if s.URLList == nil {
		s.URLList = []string{}
	}
	if t.Hashes.V1 != nil {
		s.InfoHashV1 = t.Hashes.V1.String()
	}
	if t.Hashes.V2 != nil {
		s.InfoHashV2 = t.Hashes.V2.String()
	}
	for _, f := range t.Info.Files {
		if f.Pad {
			continue
		}
		fj := fileJSON{Path: strings.Join(f.Path, "/"), Length: f.Length, Attr: f.Attr}
		if t.Info.V2 && f.Length > 0 {
			fj.PiecesRoot = fmt.Sprintf("%x", f.PiecesRoot)
		}
		s.Files = append(s.Files, fj)
	}
	return s
}

func printTorrent(w io.Writer, t *metainfo.Torrent) error {
	s := showOf(t)
	fmt.Fprintf(w, "name:         %s\n", s.Name)
	fmt.Fprintf(w, "meta version: %s\n", s.MetaVersion)
	if s.InfoHashV1 != "" {
		fmt.Fprintf(w, "info hash v1: %s\n", s.InfoHashV1)
	}
	if s.InfoHashV2 != "" {
		fmt.Fprintf(w, "info hash v2: %s\n", s.InfoHashV2)
	}
	fmt.Fprintf(w, "size:         %s (%d bytes) in %d pieces of %s\n", humanBytes(s.TotalLength), s.TotalLength, s.Pieces, humanBytes(s.PieceLength))
	fmt.Fprintf(w, "private:      %t\n", s.Private)
	for i, tier := range s.Announce {
		fmt.Fprintf(w, "tier %d:       %s\n", i+1, strings.Join(tier, " "))
	}
	for _, u := range s.URLList {
		fmt.Fprintf(w, "web seed:     %s\n", u)
	}
	for _, kv := range [][2]string{{"source", s.Source}, {"comment", s.Comment}, {"created by", s.CreatedBy}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "%-13s %s\n", kv[0]+":", kv[1])
		}
	}
	if s.CreationDate != 0 {
		fmt.Fprintf(w, "created:      %s\n", time.Unix(s.CreationDate, 0).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "magnet:       %s\nfiles:\n", s.Magnet)
	for _, f := range s.Files {
		fmt.Fprintf(w, "  %12d  %s\n", f.Length, f.Path)
	}
	if t.Info.V2 {
		fmt.Fprintln(w, "note: hybrid and v2 torrents do not load in Transmission 3")
	}
	return nil
}

func setupTorrentVerify(fs *flag.FlagSet) runFunc {
	threads := fs.Int("threads", 0, "hashing `threads` (default one per core)")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, o streams, args []string) error {
		if err := wantArgs("torrent verify", args, 2, "FILE and PATH"); err != nil {
			return err
		}
		t, err := metainfo.ReadTorrent(args[0])
		if err != nil {
			return fmt.Errorf("torrent verify: %w", err)
		}
		bar := newProgressBar(o.stderr, "verifying")
		res, err := metainfo.Verify(ctx, t, args[1], *threads, bar.update)
		bar.finish()
		if err != nil {
			return fmt.Errorf("torrent verify: %w", err)
		}
		if *asJSON {
			if err := writeJSONTo(o.stdout, res); err != nil {
				return err
			}
		} else {
			for _, f := range res.Files {
				state := "ok"
				if !f.OK {
					state = "BAD (" + f.Problem + ")"
				}
				fmt.Fprintf(o.stdout, "%-4s %s\n", state, strings.Join(f.Path, "/"))
			}
			fmt.Fprintf(o.stdout, "%d of %d pieces good\n", res.Pieces-len(res.BadPieces), res.Pieces)
			if len(res.BadPieces) > 0 {
				fmt.Fprintf(o.stdout, "bad pieces: %s\n", pieceRanges(res.BadPieces))
			}
		}
		if !res.OK() {
			return fmt.Errorf("torrent verify: %d of %d pieces bad", len(res.BadPieces), res.Pieces)
		}
		return nil
	}
}

// pieceRanges writes sorted piece indices as ranges: "3, 7-9".
func pieceRanges(ps []int) string {
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(ps[i]))
		} else {
			parts = append(parts, strconv.Itoa(ps[i])+"-"+strconv.Itoa(ps[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func setupTorrentMagnet(fs *flag.FlagSet) runFunc {
	return func(ctx context.Context, o streams, args []string) error {
		if err := wantArgs("torrent magnet", args, 1, "one FILE"); err != nil {
			return err
		}
		t, err := metainfo.ReadTorrent(args[0])
		if err != nil {
			return fmt.Errorf("torrent magnet: %w", err)
		}
		fmt.Fprintln(o.stdout, t.Magnet())
		return nil
	}
}

// progressBar draws hashing progress with rate and ETA on a terminal, and
// nothing when w is not one.
type progressBar struct {
	w     io.Writer // nil: quiet
	label string
	start time.Time
	mu    sync.Mutex // guards drawn
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	b := &progressBar{label: label, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.w = w
		}
	}
	return b
}

func (b *progressBar) update(done, total int64) {
	if b.w == nil || total == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawn = true
	const width = 30
	fill := int(float64(width) * float64(done) / float64(total))
	el := time.Since(b.start).Seconds()
	rate := float64(done) / max(el, 1e-3)
	eta := "--:--"
	if done > 0 && rate > 0 {
		left := time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second)
		eta = fmt.Sprintf("%02d:%02d", int(left.Minutes()), int(left.Seconds())%60)
	}
	fmt.Fprintf(b.w, "\r%s [%s%s] %3.0f%% %s/%s %s/s ETA %s ", b.label,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*float64(done)/float64(total),
		humanBytes(done), humanBytes(total), humanBytes(int64(rate)), eta)
}

func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
