package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"warden/internal/admin"
	"warden/internal/metainfo"
	"warden/internal/registry"
)

const registryUsage = `usage: warden registry <command> [flags] [args]

Manages the torrents warden tracks, through the admin API of a running
warden serve. Only registered, active torrents are tracked in allowlist mode
(the default); revoked ones are refused in allowlist and denylist modes.

commands:
  add ARG...              register torrents; ARG is a .torrent file, a magnet
                          link, or a 40/64-hex info hash (--name NAME to name
                          a single hash; --from FILE reads one ARG per line)
  revoke HASH --reason T  stop tracking a torrent; clients are told T
  restore HASH            track a revoked torrent again
  list [--state S]        list torrents (S: active or revoked)
  show HASH               show one torrent
  rejected [-n N]         refused announces: totals, top hashes and sources

common flags (before or after the arguments):
  --admin URL   admin API, a URL or host:port (default http://127.0.0.1:7070)
  --data DIR    where to find admin.token (default ./warden-data);
                $WARDEN_TOKEN overrides the file
  --json        print JSON instead of a table
`

type registryFlags struct {
	admin, data string
	json        bool
}

func (f *registryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.admin, "admin", "http://127.0.0.1:7070", "admin API `URL`")
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

// adminClient is the admin API client the CLI commands share.
type adminClient = admin.Client

func (f *registryFlags) client() (*admin.Client, error) {
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

// parseCommand parses the flags of a command group such as "registry",
// wherever they stand, and splits off the command word from the remaining
// arguments.
func parseCommand(fs *flag.FlagSet, args []string, usage string, stderr io.Writer) (cmd string, pos []string, err error) {
	pos, err = parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", nil, err
		}
		return "", nil, usageError{err}
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, usage)
		return "", nil, usageError{errors.New(fs.Name() + ": no command given")}
	}
	return pos[0], pos[1:], nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments, as in "revoke HASH --reason spam".
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, registryUsage)
		if len(args) == 0 {
			return usageError{errors.New("registry: no command given")}
		}
		return nil
	}
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, registryUsage) }
	var common registryFlags
	common.register(fs)
	name := fs.String("name", "", "name for a single hash (add)")
	from := fs.String("from", "", "read ARGs from `file`, one per line (add)")
	reason := fs.String("reason", "", "why the torrent is revoked; clients see it (revoke)")
	state := fs.String("state", "", "active or revoked (list)")
	topN := fs.Int("n", 20, "how many top hashes and sources (rejected)")
	cmd, pos, err := parseCommand(fs, args, registryUsage, stderr)
	if err != nil {
		return err
	}
	want := func(n int, what string) error {
		if len(pos) != n {
			return usageError{fmt.Errorf("registry %s: want %s, got %d arguments", cmd, what, len(pos))}
		}
		return nil
	}
	var run func(c *admin.Client) error
	switch cmd {
	case "add":
		ts, err := addArgs(pos, *from, *name)
		if err != nil {
			return err
		}
		run = func(c *admin.Client) error { return registryAdd(ctx, c, ts, common.json, stdout) }
	case "revoke":
		if err := want(1, "one HASH"); err != nil {
			return err
		}
		if strings.TrimSpace(*reason) == "" {
			return usageError{errors.New("registry revoke: --reason is required: clients are told it")}
		}
		run = func(c *admin.Client) error {
			e, err := c.Revoke(ctx, pos[0], *reason)
			if err != nil {
				return err
			}
			return printEntries(stdout, common.json, false, e)
		}
	case "restore":
		if err := want(1, "one HASH"); err != nil {
			return err
		}
		run = func(c *admin.Client) error {
			e, err := c.Restore(ctx, pos[0])
			if err != nil {
				return err
			}
			return printEntries(stdout, common.json, false, e)
		}
	case "show":
		if err := want(1, "one HASH"); err != nil {
			return err
		}
		run = func(c *admin.Client) error {
			e, err := c.Get(ctx, pos[0])
			if err != nil {
				return err
			}
			return printEntries(stdout, common.json, false, e)
		}
	case "list":
		if err := want(0, "no arguments"); err != nil {
			return err
		}
		run = func(c *admin.Client) error {
			es, err := c.List(ctx, *state)
			if err != nil {
				return err
			}
			return printEntries(stdout, common.json, true, es...)
		}
	case "rejected":
		if err := want(0, "no arguments"); err != nil {
			return err
		}
		run = func(c *admin.Client) error { return registryRejected(ctx, c, *topN, common.json, stdout) }
	default:
		fmt.Fprint(stderr, registryUsage)
		return usageError{fmt.Errorf("registry: unknown command %q", cmd)}
	}
	c, err := common.client()
	if err != nil {
		return err
	}
	return run(c)
}

// addArgs turns command-line arguments and the lines of --from into
// torrents to register, reading .torrent files and magnet links here so
// the server only ever sees hashes.
func addArgs(pos []string, from, name string) ([]admin.AddTorrent, error) {
	args := append([]string(nil), pos...)
	if from != "" {
		f, err := os.Open(from)
		if err != nil {
			return nil, fmt.Errorf("registry add: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			args = append(args, text)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("registry add: %s: %w", from, err)
		}
	}
	if len(args) == 0 {
		return nil, usageError{errors.New("registry add: give a .torrent file, magnet link or info hash, or --from FILE")}
	}
	if name != "" && len(args) != 1 {
		return nil, usageError{errors.New("registry add: --name names a single torrent")}
	}
	ts := make([]admin.AddTorrent, 0, len(args))
	for _, arg := range args {
		h, err := metainfo.ParseArg(arg)
		if err != nil {
			return nil, fmt.Errorf("registry add: %w", err)
		}
		t := admin.AddTorrent{Name: h.Name}
		if name != "" {
			t.Name = name
		}
		if h.V1 != nil {
			t.V1 = h.V1.String()
		}
		if h.V2 != nil {
			t.V2 = hex.EncodeToString(h.V2[:])
		}
		ts = append(ts, t)
	}
	return ts, nil
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

func registryRejected(ctx context.Context, c *admin.Client, n int, asJSON bool, w io.Writer) error {
	rj, err := c.Rejected(ctx, n)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONTo(w, rj)
	}
	fmt.Fprintf(w, "refused announces and scrapes: %d for unregistered torrents, %d for revoked ones\n", rj.Unregistered, rj.Revoked)
	if rj.SampleRate < 1 {
		fmt.Fprintf(w, "(heavy traffic: the lists below count a 1/%.0f sample)\n", 1/rj.SampleRate)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTOP INFO HASHES\tCOUNT\tFIRST SEEN\tLAST SEEN")
	for _, e := range rj.TopHashes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Key, e.Count, e.FirstSeen.Format("2006-01-02 15:04:05"), e.LastSeen.Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintln(tw, "\nTOP SOURCES\tCOUNT\tFIRST SEEN\tLAST SEEN")
	for _, e := range rj.TopSources {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Key, e.Count, e.FirstSeen.Format("2006-01-02 15:04:05"), e.LastSeen.Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
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
	fmt.Fprintln(tw, "STATE\tV1\tV2\tNAME\tCHANGED\tBY\tREASON")
	for _, e := range es {
		v1, v2 := "-", "-"
		if e.HasV1() {
			v1 = e.V1.String()
		}
		if e.HasV2() {
			v2 = e.V2.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.State, v1, v2, e.Name, e.ChangedAt.Format("2006-01-02 15:04:05"), e.ChangedBy, e.Reason)
	}
	return tw.Flush()
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
