package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"warden/internal/admin"
	"warden/internal/evidence"
	"warden/internal/metainfo"
	"warden/internal/registry"
)

var registryCommand = &command{
	name:    "registry",
	summary: "add, revoke, restore and list the torrents warden tracks",
	help: `
Manages the torrents warden tracks, through the admin API of a running
warden serve. Only registered, active torrents are tracked in allowlist mode
(the default); revoked ones are refused in allowlist and denylist modes.
Every command takes --admin ADDR (default 127.0.0.1:7070) and --data DIR
(where admin.token is; $WARDEN_TOKEN overrides it).`,
	sub: []*command{
		{name: "add", args: "ARG... [--name NAME] [--from FILE]", summary: "register torrents: .torrent files, magnet links or 40/64-hex info hashes", setup: setupRegistryAdd},
		{name: "revoke", args: "HASH --reason TEXT", summary: "stop tracking a torrent; its clients are told TEXT", setup: setupRegistryRevoke},
		{name: "restore", args: "HASH", summary: "track a revoked torrent again", setup: setupRegistryRestore},
		{name: "list", args: "[--state active|revoked]", summary: "list the registered torrents", setup: setupRegistryList},
		{name: "show", args: "HASH", summary: "show one torrent", setup: setupRegistryShow},
		{name: "history", args: "HASH", summary: "show the audit log of one torrent: who added, revoked or restored it, and when", setup: setupRegistryHistory},
		{name: "changes", args: "[--after SEQ] [--limit N]", summary: "show the audit log of every change, oldest first", setup: setupRegistryChanges},
		{name: "refused", args: "[-n N]", summary: "refused announces and scrapes: totals, top hashes and sources", setup: setupRegistryRefused},
		{name: "backup", args: "FILE [--offline] [--force]", summary: "write a consistent copy of the registry, recent changes included, to FILE", setup: setupRegistryBackup, help: `
Asks the running warden for a copy of its registry (GET /api/registry/backup)
and writes it to FILE, a SQLite database: a consistent snapshot including
the changes still in registry.db-wal, which a copy of registry.db alone
would miss. The copy is checked before it is renamed into place. With
--offline it reads DATA/registry.db itself (read-only, whether or not warden
runs; needs read access to the data directory) instead of asking the server.
Restore a backup with: warden registry recover --from FILE.`},
		{name: "recover", args: "[--from BACKUP]", summary: "after warden refused to start for missing registry changes: restore a backup, or accept the loss", setup: setupRegistryRecover, help: `
warden serve refuses to start when the registry reads as older than its
commit record (DATA/registry.db-mark) says it was: changes it acknowledged
are missing, usually because registry.db-wal was damaged after a crash.
Stop warden first (recover refuses while it runs). With --from BACKUP it
checks the backup (made with warden registry backup) and puts it in the
registry's place; without, it accepts the registry as it is, and the
missing changes are given up. Either way the files as they were are kept
beside it (*.before-recover-TIME), and it prints what was lost. With nothing
missing it changes nothing.`},
	},
}

// adminFlags are the flags of every command that talks to the admin API.
type adminFlags struct {
	admin, data string
	json        bool
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.admin, "admin", "127.0.0.1:7070", "admin API `address`: host:port, as serve --admin takes it, or a URL")
	fs.StringVar(&f.data, "data", "./warden-data", "data `directory` holding admin.token")
	fs.BoolVar(&f.json, "json", false, "print JSON")
}

// adminURL takes the admin API's address as a URL or, as `serve --admin`
// takes it, as host:port.
func adminURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usageError{fmt.Errorf("--admin %q: want host:port or an http(s) URL", s)}
	}
	return strings.TrimRight(s, "/"), nil
}

func (f *adminFlags) client() (*admin.Client, error) {
	tok := admin.Token(os.Getenv(admin.TokenEnv))
	if tok == "" {
		var err error
		if tok, err = admin.ReadToken(filepath.Join(f.data, admin.TokenFile)); err != nil {
			return nil, fmt.Errorf("%w (give --data DIR of the server, or set %s)", err, admin.TokenEnv)
		}
	}
	base, err := adminURL(f.admin)
	if err != nil {
		return nil, err
	}
	return &admin.Client{BaseURL: base, Token: tok, Actor: actorName()}, nil
}

// actorName is who the audit log records: user@host.
func actorName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

func setupRegistryAdd(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	name := fs.String("name", "", "`name` for a single hash")
	from := fs.String("from", "", "read ARGs from `file`, one per line (# comments); any number, sent in batches")
	return func(ctx context.Context, out streams, args []string) error {
		src := addSource{pos: args, from: *from, name: *name}
		n, err := src.count()
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		if n <= addBatch {
			ts := make([]admin.AddTorrent, 0, n)
			if err := src.each(func(_ string, t admin.AddTorrent) error { ts = append(ts, t); return nil }); err != nil {
				return err
			}
			return registryAdd(ctx, c, ts, a.json, out.stdout)
		}
		return registryAddBatches(ctx, c, src, n, a.json, out)
	}
}

func setupRegistryRevoke(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	reason := fs.String("reason", "", "why the torrent is revoked; clients are told it (required)")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry revoke", args, 1, "one HASH"); err != nil {
			return err
		}
		if strings.TrimSpace(*reason) == "" {
			return usageError{errors.New("registry revoke: --reason is required: clients are told it")}
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		e, err := c.Revoke(ctx, args[0], *reason)
		if err != nil {
			return err
		}
		return printEntries(out.stdout, a.json, false, e)
	}
}

func setupRegistryRestore(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry restore", args, 1, "one HASH"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		e, err := c.Restore(ctx, args[0])
		if err != nil {
			return err
		}
		return printEntries(out.stdout, a.json, false, e)
	}
}

func setupRegistryShow(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry show", args, 1, "one HASH"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		e, err := c.Get(ctx, args[0])
		if err != nil {
			return err
		}
		return printEntries(out.stdout, a.json, false, e)
	}
}

func setupRegistryList(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	state := fs.String("state", "", "only torrents in this `state`: active or revoked")
	name := fs.String("name", "", "only torrents whose name contains `text` (ignoring case)")
	limit := fs.Int("limit", 0, "list at most `N` torrents; 0 lists them all")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry list", args, 0, "no arguments"); err != nil {
			return err
		}
		if *limit < 0 {
			return usageError{errors.New("registry list: --limit must be 0 or more")}
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		return registryList(ctx, c, admin.ListQuery{State: *state, Name: *name}, *limit, a.json, out.stdout)
	}
}

// errListed stops a listing at its --limit.
var errListed = errors.New("listed enough")

// registryList prints the entries q selects, at most limit (0: all), as
// they arrive page by page: the CLI's memory does not grow with the
// registry. The table is aligned within each block of listBlock rows.
func registryList(ctx context.Context, c *admin.Client, q admin.ListQuery, limit int, asJSON bool, w io.Writer) error {
	if limit > 0 {
		q.Limit = min(limit, admin.MaxListLimit)
	}
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	n := 0
	err := c.Walk(ctx, q, func(e *registry.Entry) error {
		if limit > 0 && n == limit {
			return errListed
		}
		n++
		if asJSON {
			b, err := json.MarshalIndent(e, "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if n == 1 {
				sep = "[\n  "
			}
			bw.WriteString(sep)
			bw.Write(b)
			return nil
		}
		if n == 1 {
			writeEntryHeader(tw)
		}
		writeEntryRow(tw, e)
		if n%listBlock == 0 {
			return tw.Flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errListed) {
		bw.Flush() // what was listed, then the error
		return err
	}
	switch {
	case asJSON && n == 0:
		bw.WriteString("[]\n")
	case asJSON:
		bw.WriteString("\n]\n")
	case n == 0:
		writeEntryHeader(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// listBlock is how many rows of `registry list` are aligned together.
const listBlock = 1000

func setupRegistryRefused(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	topN := fs.Int("n", 20, "how many top hashes and sources")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry refused", args, 0, "no arguments"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		return registryRefused(ctx, c, *topN, a.json, out.stdout)
	}
}

func setupRegistryHistory(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry history", args, 1, "one HASH"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		cs, err := c.History(ctx, args[0])
		if err != nil {
			return err
		}
		return printChanges(out.stdout, a.json, cs)
	}
}

func setupRegistryChanges(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	after := fs.Int64("after", 0, "show changes after this sequence `number` (the SEQ column), to page on")
	limit := fs.Int("limit", 0, "at most this many `changes`; 0 = the server's default (100)")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry changes", args, 0, "no arguments"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		cs, err := c.Changes(ctx, *after, *limit)
		if err != nil {
			return err
		}
		return printChanges(out.stdout, a.json, cs)
	}
}

func setupRegistryBackup(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	offline := fs.Bool("offline", false, "read DATA/registry.db directly instead of asking the running server")
	force := fs.Bool("force", false, "replace FILE if it exists")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry backup", args, 1, "one FILE"); err != nil {
			return err
		}
		var c *admin.Client
		if !*offline {
			var err error
			if c, err = a.client(); err != nil {
				return err
			}
		}
		res, err := registryBackup(ctx, c, filepath.Join(a.data, registryFile), args[0], *force)
		if err != nil {
			return registryOpenAdvice(fmt.Errorf("registry backup: %w", err), a.data)
		}
		if a.json {
			return writeJSONTo(out.stdout, res)
		}
		fmt.Fprintf(out.stdout, "backed up %d entries (generation %d) to %s (%d bytes)\n", res.Entries, res.Generation, res.File, res.Bytes)
		return nil
	}
}

// backupResult is what `warden registry backup --json` prints.
type backupResult struct {
	File string `json:"file"`
	registry.Info
	Bytes int64 `json:"bytes"`
}

// registryBackup writes a backup to dst, through the server c or, if c is
// nil, from the file at dbPath. It writes to a temporary file beside dst,
// checks it (an intact registry holding what the server said), and only
// then renames it into place, so dst is never a partial copy.
func registryBackup(ctx context.Context, c *admin.Client, dbPath, dst string, force bool) (backupResult, error) {
	res := backupResult{File: dst}
	if _, err := os.Lstat(dst); err == nil && !force {
		return res, fmt.Errorf("%s exists; give --force to replace it", dst)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return res, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	var got registry.Info
	if c == nil {
		f.Close()
		got, err = registry.BackupFile(ctx, dbPath, tmp)
	} else {
		got, err = c.Backup(ctx, f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			var check registry.Info
			if check, err = registry.Inspect(ctx, tmp); err == nil && check != got {
				err = fmt.Errorf("the copy received holds generation %d with %d entries; the server sent generation %d with %d",
					check.Generation, check.Entries, got.Generation, got.Entries)
			}
		}
	}
	if err != nil {
		return res, err
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return res, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return res, err
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync() // make the rename durable
		d.Close()
	}
	res.Info, res.Bytes = got, fi.Size()
	return res, nil
}

func setupRegistryRecover(fs *flag.FlagSet) runFunc {
	data := fs.String("data", "./warden-data", "data `directory` holding registry.db")
	from := fs.String("from", "", "restore this backup `file` (made with warden registry backup) instead of accepting the registry as it is")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("registry recover", args, 0, "no arguments"); err != nil {
			return err
		}
		path := filepath.Join(*data, registryFile)
		rec, err := registry.Recover(ctx, path, *from, nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONTo(out.stdout, recoveryJSON(path, rec))
		}
		printRecovery(out.stdout, path, *from, rec)
		return nil
	}
}

// recoveryJSON is what `warden registry recover --json` prints.
func recoveryJSON(path string, rec registry.Recovery) any {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	return struct {
		Registry  string        `json:"registry"`
		Changed   bool          `json:"changed"`
		Record    registry.Info `json:"record"`
		RecordErr string        `json:"record_error,omitempty"`
		Found     registry.Info `json:"found"`
		FoundErr  string        `json:"found_error,omitempty"`
		Now       registry.Info `json:"now"`
		SetAside  []string      `json:"set_aside"`
	}{path, rec.Changed, rec.Record, errText(rec.RecordErr), rec.Found, errText(rec.FoundErr), rec.Now, rec.SetAside}
}

func printRecovery(w io.Writer, path, from string, rec registry.Recovery) {
	if !rec.Changed {
		fmt.Fprintf(w, "%s: nothing is missing (generation %d, %d entries); nothing changed\n", path, rec.Now.Generation, rec.Now.Entries)
		return
	}
	if rec.RecordErr != nil {
		fmt.Fprintf(w, "commit record: unreadable (%v)\n", rec.RecordErr)
	} else {
		fmt.Fprintf(w, "commit record: generation %d with %d entries had been committed\n", rec.Record.Generation, rec.Record.Entries)
	}
	if rec.FoundErr != nil {
		fmt.Fprintf(w, "registry found: unreadable (%v)\n", rec.FoundErr)
	} else {
		fmt.Fprintf(w, "registry found: generation %d with %d entries\n", rec.Found.Generation, rec.Found.Entries)
	}
	if from != "" {
		fmt.Fprintf(w, "restored %s: now generation %d with %d entries\n", from, rec.Now.Generation, rec.Now.Entries)
	} else {
		fmt.Fprintf(w, "accepted as it is: generation %d with %d entries\n", rec.Now.Generation, rec.Now.Entries)
	}
	if rec.RecordErr == nil && rec.Now.Generation < rec.Record.Generation {
		fmt.Fprintf(w, "given up: the last %d changes; %d entries fewer than recorded\n",
			rec.Record.Generation-rec.Now.Generation, rec.Record.Entries-rec.Now.Entries)
	}
	fmt.Fprintf(w, "the files as they were: %s\n", strings.Join(rec.SetAside, " "))
	fmt.Fprintln(w, "warden serve can start now")
}

// registryOpenAdvice adds to the registry's refusal to open what the
// operator does next, in the words of the CLI.
func registryOpenAdvice(err error, data string) error {
	if !errors.Is(err, registry.ErrRolledBack) && !errors.Is(err, registry.ErrRecordDamaged) {
		return err
	}
	db := filepath.Join(data, registryFile)
	return fmt.Errorf("%w. What to do: first copy %s, %s-wal and %s-mark aside; then restore a backup made with "+
		"`warden registry backup FILE`: warden registry recover --data %s --from FILE; "+
		"or accept the loss: warden registry recover --data %s (see warden help registry recover)",
		err, db, db, db, data, data)
}

func printChanges(w io.Writer, asJSON bool, cs []registry.Change) error {
	if asJSON {
		if cs == nil {
			cs = []registry.Change{}
		}
		return writeJSONTo(w, cs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tBY\tACTION\tHASH\tNAME\tREASON")
	for _, c := range cs {
		hash := c.V1.String()
		if c.V1.IsZero() {
			hash = c.V2.String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Seq, c.At.Format(time.DateTime), c.Actor, c.Action, hash, c.Name, c.Reason)
	}
	return tw.Flush()
}

// wantArgs checks the number of positional arguments.
func wantArgs(cmd string, args []string, n int, what string) error {
	if len(args) != n {
		return usageError{fmt.Errorf("%s: want %s, got %d arguments", cmd, what, len(args))}
	}
	return nil
}

// addSource is what `registry add` registers: its arguments, then the
// lines of --from. It is read twice, once to check every line before
// anything is sent and once to send, so a file of any size is never held
// in memory. .torrent files and magnet links are read here, so the server
// only ever sees hashes.
type addSource struct {
	pos  []string
	from string // a file of arguments, one per line; "" for none
	name string // --name, for a single torrent
}

// each calls fn for every torrent of s, with where it came from (the
// argument, or FILE:LINE), and stops at the first error, which names the
// argument or line.
func (s addSource) each(fn func(where string, t admin.AddTorrent) error) error {
	one := func(where, arg string) error {
		h, err := metainfo.ParseArg(arg)
		if err != nil {
			return fmt.Errorf("registry add: %s: %w", where, err)
		}
		t := admin.AddTorrent{Name: h.Name}
		if s.name != "" {
			t.Name = s.name
		}
		if h.V1 != nil {
			t.V1 = h.V1.String()
		}
		if h.V2 != nil {
			t.V2 = h.V2.String()
		}
		return fn(where, t)
	}
	for _, arg := range s.pos {
		if err := one(arg, arg); err != nil {
			return err
		}
	}
	if s.from == "" {
		return nil
	}
	f, err := os.Open(s.from)
	if err != nil {
		return fmt.Errorf("registry add: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := one(fmt.Sprintf("%s:%d", s.from, line), text); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("registry add: %s: %w", s.from, err)
	}
	return nil
}

// count checks every torrent of s and returns how many there are.
func (s addSource) count() (int, error) {
	n := 0
	if err := s.each(func(string, admin.AddTorrent) error { n++; return nil }); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, usageError{errors.New("registry add: give a .torrent file, magnet link or info hash, or --from FILE")}
	}
	if s.name != "" && n != 1 {
		return 0, usageError{errors.New("registry add: --name names a single torrent")}
	}
	return n, nil
}

// addBatch is how many torrents `registry add` sends per request. Each
// request is one transaction of a second or so even on a busy machine,
// answered long before any timeout; admin.MaxAddBatch is the server's cap.
const addBatch = 5000

// busyRetries is how often a batch refused as "registry busy" (HTTP 503:
// nothing changed) is sent again before registry add gives up.
const busyRetries = 5

// registryAddBatches registers the n torrents of src in batches of
// addBatch, one transaction each, reporting progress on stderr. Batches
// already sent stay registered if a later one fails, and the error says
// so: running the same command again skips what is registered.
func registryAddBatches(ctx context.Context, c *admin.Client, src addSource, n int, asJSON bool, out streams) error {
	var (
		total       admin.AddResponse
		batch       = make([]admin.AddTorrent, 0, addBatch)
		first, last string // where the batch's torrents came from
		sent        int
		reported    = time.Now()
	)
	send := func() error {
		resp, err := addRetrying(ctx, c, batch, out.stderr)
		if err != nil {
			return addBatchError(err, first, last, sent, n, total)
		}
		total.Added += resp.Added
		total.Existing += resp.Existing
		sent += len(batch)
		batch = batch[:0]
		if time.Since(reported) >= 2*time.Second || sent == n {
			reported = time.Now()
			fmt.Fprintf(out.stderr, "registry add: %d of %d sent: %d registered, %d already registered\n", sent, n, total.Added, total.Existing)
		}
		return nil
	}
	err := src.each(func(where string, t admin.AddTorrent) error {
		if len(batch) == 0 {
			first = where
		}
		last = where
		if batch = append(batch, t); len(batch) == addBatch {
			return send()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(out.stdout, total)
	}
	fmt.Fprintf(out.stdout, "registered %d, already registered %d\n", total.Added, total.Existing)
	return nil
}

// addRetrying sends one batch, again after the server's Retry-After while
// it answers "registry busy" (nothing was changed), up to busyRetries times.
func addRetrying(ctx context.Context, c *admin.Client, batch []admin.AddTorrent, stderr io.Writer) (admin.AddResponse, error) {
	for try := 0; ; try++ {
		resp, err := c.Add(ctx, batch)
		var ae *admin.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || try == busyRetries {
			return resp, err
		}
		wait := min(max(ae.RetryAfter, time.Second), 30*time.Second)
		fmt.Fprintf(stderr, "registry add: %s; retrying in %v\n", ae.Msg, wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return resp, ctx.Err()
		}
	}
}

// addBatchError says what became of an import that stopped at a batch:
// which lines, whether that batch may have been registered, and that the
// earlier batches stay registered.
func addBatchError(err error, first, last string, sent, n int, total admin.AddResponse) error {
	earlier := fmt.Sprintf("the %d of %d sent before it stay registered (%d new, %d already registered)",
		sent, n, total.Added, total.Existing)
	var ae *admin.APIError
	if errors.As(err, &ae) {
		// The server answered: the batch, one transaction, was not registered.
		return fmt.Errorf("registry add: the batch %s to %s was refused and none of it registered: %w; %s. "+
			"Fix the problem and run the same command again: what is registered is skipped", first, last, err, earlier)
	}
	return fmt.Errorf("registry add: no answer for the batch %s to %s (%w), which may or may not have been registered; %s. "+
		"Run the same command again: what is registered is skipped", first, last, err, earlier)
}

func registryAdd(ctx context.Context, c *admin.Client, ts []admin.AddTorrent, asJSON bool, w io.Writer) error {
	resp, err := c.Add(ctx, ts)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(w, resp)
	}
	if len(resp.Torrents) == 1 {
		e := resp.Torrents[0]
		verb := "registered"
		if resp.Existing == 1 {
			verb = "already registered (" + e.State.String() + ")"
		}
		fmt.Fprintf(w, "%s %s\n", verb, describeEntry(e))
		return nil
	}
	fmt.Fprintf(w, "registered %d, already registered %d\n", resp.Added, resp.Existing)
	return nil
}

func registryRefused(ctx context.Context, c *admin.Client, n int, asJSON bool, w io.Writer) error {
	rj, err := c.Refused(ctx, n)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(w, rj)
	}
	fmt.Fprintf(w, "refused announces and scrapes: %d for unregistered torrents, %d for revoked ones\n", rj.Unregistered, rj.Revoked)
	writeSampleNote(w, rj.SampleRate)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeKnocks(tw, "TOP INFO HASHES", rj.TopHashes)
	writeKnocks(tw, "TOP SOURCES", rj.TopSources)
	return tw.Flush()
}

// writeSampleNote says when the "who knocks" counts are estimates.
func writeSampleNote(w io.Writer, rate float64) {
	if rate < 1 {
		fmt.Fprintf(w, "(heavy traffic: counts are estimated from a 1/%.0f sample)\n", 1/rate)
	}
}

// writeKnocks prints a "who knocks" list: what each key surely sent, the
// estimate, and when it was seen. Every command prints these lists so.
func writeKnocks[K interface {
	comparable
	fmt.Stringer
}](tw *tabwriter.Writer, title string, es []evidence.Entry[K]) {
	fmt.Fprintf(tw, "\n%s\tAT LEAST\tESTIMATE\tFIRST SEEN\tLAST SEEN\n", title)
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", e.Key, e.Guaranteed, e.Count, e.FirstSeen.Format(time.DateTime), e.LastSeen.Format(time.DateTime))
	}
}

func describeEntry(e registry.Entry) string {
	var parts []string
	if e.HasV1() {
		parts = append(parts, "v1 "+e.V1.String())
	}
	if e.HasV2() {
		parts = append(parts, "v2 "+e.V2.String())
	}
	if e.Name != "" {
		parts = append(parts, fmt.Sprintf("%q", e.Name))
	}
	return strings.Join(parts, " ")
}

func printEntries(w io.Writer, asJSON, list bool, es ...registry.Entry) error {
	if asJSON {
		if list {
			if es == nil {
				es = []registry.Entry{}
			}
			return writeJSONTo(w, es)
		}
		return writeJSONTo(w, es[0])
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeEntryHeader(tw)
	for i := range es {
		writeEntryRow(tw, &es[i])
	}
	return tw.Flush()
}

func writeEntryHeader(tw io.Writer) {
	fmt.Fprintln(tw, "STATE\tV1\tV2\tNAME\tCHANGED\tBY\tREASON")
}

func writeEntryRow(tw io.Writer, e *registry.Entry) {
	v1, v2 := "-", "-"
	if e.HasV1() {
		v1 = e.V1.String()
	}
	if e.HasV2() {
		v2 = e.V2.String()
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.State, v1, v2, e.Name, e.ChangedAt.Format(time.DateTime), e.ChangedBy, e.Reason)
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
