package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"warden/internal/atomicfile"
	"warden/internal/config"
	"warden/internal/evidence"
	"warden/internal/evidence/report"
)

var evidenceCommand = &command{
	name:    "evidence",
	summary: "check, print and export the tamper-evident evidence log",
	help: `
The evidence log (DATA/evidence.db) keeps warden's record of abuse and of
the operator's actions in a Merkle tree whose root is signed every second
while records arrive and every minute when idle. These commands work
offline on the data directory, with or without warden serve running.
Save the output of "evidence checkpoint" somewhere else from time to time:
"evidence verify --checkpoint FILE" then proves that the log still holds
every record it held then, unchanged.`,
	sub: []*command{
		{name: "verify", args: "[--data DIR] [--checkpoint FILE] [--key KEY] | --bundle FILE", summary: "check every record against the tree and the signatures; name the first bad record", setup: setupEvidenceVerify},
		{name: "checkpoint", args: "[--data DIR]", summary: "print the latest signed checkpoint", setup: setupEvidenceCheckpoint},
		{name: "export", args: "[--since T] -o BUNDLE [--data DIR]", summary: "write records with their proofs, the checkpoint and the key to one file anyone can verify", setup: setupEvidenceExport},
		{name: "key", args: "[--data DIR]", summary: "print the verifier key (public) that checks the log's signatures", setup: setupEvidenceKey},
		{name: "report", args: "[--data DIR] [--since T] [--until T] [--format json|md|html|xarf] [-o FILE] [--contact EMAIL] [--org NAME]", summary: "write the abuse report of a period: tables, chart, checkpoint, abuse notices and XARF per organisation", setup: setupEvidenceReport},
	},
}

func evidenceDataFlag(fs *flag.FlagSet) *string {
	return fs.String("data", config.Default().Data, "data `directory` holding evidence.db")
}

func setupEvidenceVerify(fs *flag.FlagSet) runFunc {
	data := evidenceDataFlag(fs)
	cpFile := fs.String("checkpoint", "", "an earlier checkpoint `file` (from evidence checkpoint): the log must still hold its records, unchanged")
	bundle := fs.String("bundle", "", "verify this bundle `file` alone (from evidence export), without a data directory")
	key := fs.String("key", "", "the verifier `key` (or a file holding it) the log or bundle must be signed with; default: DATA/evidence.pub, or the bundle's own")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("evidence verify: unexpected argument %q", args[0])}
		}
		k, err := readKeyFlag(*key)
		if err != nil {
			return err
		}
		if *bundle != "" {
			if *cpFile != "" {
				return usageError{errors.New("evidence verify: --bundle checks the bundle alone; --checkpoint is for a data directory")}
			}
			return verifyEvidenceBundle(out.stdout, *bundle, k, *asJSON)
		}
		opts := evidence.VerifyOptions{Key: k}
		if *cpFile != "" {
			if opts.Earlier, err = readFileMax(*cpFile, 64<<10); err != nil {
				return fmt.Errorf("evidence verify: --checkpoint: %w", err)
			}
		}
		rep, err := evidence.Verify(ctx, *data, opts)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONTo(out.stdout, rep)
		}
		printEvidenceReport(out.stdout, rep)
		return nil
	}
}

// readKeyFlag takes --key as a verifier key or the name of a file holding
// one.
func readKeyFlag(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	b, err := readFileMax(s, 4<<10)
	switch {
	case err == nil:
		return strings.TrimSpace(string(b)), nil
	case errors.Is(err, fs.ErrNotExist) && strings.Count(s, "+") >= 2:
		return s, nil // a key, not a file
	}
	return "", fmt.Errorf("--key: %w", err)
}

// readFileMax reads a file of at most limit bytes.
func readFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func printEvidenceReport(w io.Writer, rep *evidence.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "evidence log %s verified\n", rep.Path)
	fmt.Fprintf(tw, "  records\t%d, of which %d pruned\n", rep.Records, rep.Pruned)
	if len(rep.Kinds) > 0 {
		fmt.Fprintf(tw, "  kinds\t%s\n", kindCounts(rep.Kinds))
	}
	for _, p := range rep.Prunings {
		fmt.Fprintf(tw, "  pruned\t%d records below %d, logged before %s, by record %d at %s (retention %s)\n",
			p.Count, p.Below, p.Cutoff.Format(time.RFC3339), p.Index, p.Logged.Format(time.RFC3339), p.Retention)
	}
	fmt.Fprintf(tw, "  checkpoints\t%d; latest: %d records, signed %s\n", rep.Checkpoints, rep.Latest.Size, rep.Latest.Time.Format(time.RFC3339Nano))
	if rep.Unsigned > 0 {
		fmt.Fprintf(tw, "  unsigned\t%d records after the latest checkpoint (the writer stopped before signing them; the next start signs them)\n", rep.Unsigned)
	}
	if e := rep.Earlier; e != nil {
		fmt.Fprintf(tw, "  earlier\tcheckpoint %d (%d records, signed %s): consistent, nothing below it changed\n", e.Seq, e.Size, e.Time.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "  key\t%s\n", rep.Key)
	tw.Flush()
}

func kindCounts(m map[evidence.Kind]int64) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	var b strings.Builder
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[evidence.Kind(k)])
	}
	return b.String()
}

func verifyEvidenceBundle(w io.Writer, path, key string, asJSON bool) error {
	data, err := readFileMax(path, evidence.MaxBundleBytes)
	if err != nil {
		return fmt.Errorf("evidence verify --bundle: %w", err)
	}
	rep, err := evidence.VerifyBundle(data, key)
	if err != nil {
		return fmt.Errorf("evidence verify --bundle %s: %w", path, err)
	}
	if asJSON {
		return writeJSONTo(w, rep)
	}
	kinds := map[evidence.Kind]int64{}
	for _, r := range rep.Records {
		kinds[r.Kind]++
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "bundle %s verified\n", path)
	fmt.Fprintf(tw, "  records\t%d", len(rep.Records))
	if n := len(rep.Records); n > 0 {
		fmt.Fprintf(tw, " (indexes %d-%d): %s", rep.Records[0].Index, rep.Records[n-1].Index, kindCounts(kinds))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "  checkpoint\t%d: %d records, signed %s\n", rep.Checkpoint.Seq, rep.Checkpoint.Size, rep.Checkpoint.Time.Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "  key\t%s\n", rep.Key)
	if key == "" {
		fmt.Fprintf(tw, "\t(the bundle's own: compare it with the key the operator publishes, or give --key)\n")
	}
	return tw.Flush()
}

func setupEvidenceCheckpoint(fs *flag.FlagSet) runFunc {
	data := evidenceDataFlag(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("evidence checkpoint: unexpected argument %q", args[0])}
		}
		cp, err := evidence.LatestCheckpoint(ctx, *data)
		if err != nil {
			return err
		}
		_, err = out.stdout.Write(cp.Note)
		return err
	}
}

func setupEvidenceKey(fs *flag.FlagSet) runFunc {
	data := evidenceDataFlag(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("evidence key: unexpected argument %q", args[0])}
		}
		k, err := evidence.ReadVerifierKey(*data)
		if err != nil {
			return err
		}
		fmt.Fprintln(out.stdout, k)
		return nil
	}
}

func setupEvidenceExport(fs *flag.FlagSet) runFunc {
	data := evidenceDataFlag(fs)
	since := fs.String("since", "", "export records logged since `T`: an RFC 3339 time, a date (2006-01-02, UTC) or a duration ago (72h); default: all")
	output := fs.String("o", "", "write the bundle to `file` (- for stdout); required")
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("evidence export: unexpected argument %q", args[0])}
		}
		if *output == "" {
			return usageError{errors.New("evidence export: -o BUNDLE is required")}
		}
		t, err := parseEvidenceSince(*since, time.Now())
		if err != nil {
			return usageError{fmt.Errorf("evidence export: --since: %w", err)}
		}
		var rep evidence.ExportReport
		if *output == "-" {
			rep, err = evidence.Export(ctx, *data, t, out.stdout)
		} else {
			rep, err = evidence.ExportFile(ctx, *data, t, *output)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out.stderr, "evidence export: %d records", rep.Records)
		if rep.Records > 0 {
			fmt.Fprintf(out.stderr, " from index %d", rep.First)
		}
		fmt.Fprintf(out.stderr, ", proved against checkpoint %d (%d records)", rep.Checkpoint.Seq, rep.Checkpoint.Size)
		if rep.Pruned > 0 {
			fmt.Fprintf(out.stderr, "; %d pruned records left out", rep.Pruned)
		}
		if rep.Unsigned > 0 {
			fmt.Fprintf(out.stderr, "; %d newer records not yet signed left out", rep.Unsigned)
		}
		fmt.Fprintln(out.stderr)
		return nil
	}
}

// parseEvidenceSince reads --since: an RFC 3339 time, a date, or a duration
// before now. Empty means the beginning.
func parseEvidenceSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2026-12-03T10:00:00Z), a date (2026-12-03) or a duration ago (72h)", s)
}

func setupEvidenceReport(fs *flag.FlagSet) runFunc {
	data := evidenceDataFlag(fs)
	since := fs.String("since", "", "report episodes still going at or after `T` (same forms as export --since); default: all")
	until := fs.String("until", "", "report episodes begun at or before `T` (same forms); default: all")
	format := fs.String("format", "", "json, md, html or xarf; default: from -o's extension (.json, .html, .md), else md")
	output := fs.String("o", "", "write to `file` (default stdout); md also writes its chart beside it, as FILE.png")
	contact := fs.String("contact", "", "the reporter's `email`; default: tracker.abuse_contact from the log's config record")
	org := fs.String("org", "", "the reporter's `name`; default: the contact's domain")
	return func(ctx context.Context, out streams, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("evidence report: unexpected argument %q", args[0])}
		}
		now := time.Now()
		var opts report.Options
		var err error
		if opts.Since, err = parseEvidenceSince(*since, now); err != nil {
			return usageError{fmt.Errorf("evidence report: --since: %w", err)}
		}
		if opts.Until, err = parseEvidenceSince(*until, now); err != nil {
			return usageError{fmt.Errorf("evidence report: --until: %w", err)}
		}
		if !opts.Until.IsZero() && opts.Until.Before(opts.Since) {
			return usageError{errors.New("evidence report: --until is before --since")}
		}
		f := *format
		if f == "" {
			switch strings.ToLower(filepath.Ext(*output)) {
			case ".json":
				f = "json"
			case ".html", ".htm":
				f = "html"
			default:
				f = "md"
			}
		}
		if !slices.Contains([]string{"json", "md", "html", "xarf"}, f) {
			return usageError{fmt.Errorf("evidence report: --format %q: want json, md, html or xarf", f)}
		}
		opts.Contact, opts.Org, opts.Now = *contact, *org, now
		rep, err := report.Read(ctx, *data, opts)
		if err != nil {
			return err
		}
		toFile := *output != "" && *output != "-"
		var buf bytes.Buffer
		var chart []byte
		switch f {
		case "json":
			err = rep.WriteJSON(&buf)
		case "html":
			err = rep.WriteHTML(&buf)
		case "xarf":
			err = rep.WriteXARF(&buf)
		case "md":
			pngName := ""
			if toFile {
				var png bytes.Buffer
				switch perr := rep.WritePNG(&png); {
				case perr == nil:
					chart, pngName = png.Bytes(), strings.TrimSuffix(filepath.Base(*output), filepath.Ext(*output))+".png"
				case !errors.Is(perr, report.ErrNoChart):
					return fmt.Errorf("evidence report: chart: %w", perr)
				}
			}
			err = rep.WriteMarkdown(&buf, pngName)
		}
		if err != nil {
			return fmt.Errorf("evidence report: %w", err)
		}
		if !toFile {
			_, err = out.stdout.Write(buf.Bytes())
			return err
		}
		if chart != nil {
			pngPath := strings.TrimSuffix(*output, filepath.Ext(*output)) + ".png"
			if err := atomicfile.WriteFile(pngPath, chart); err != nil {
				return fmt.Errorf("evidence report: %w", err)
			}
		}
		if err := atomicfile.WriteFile(*output, buf.Bytes()); err != nil {
			return fmt.Errorf("evidence report: %w", err)
		}
		fmt.Fprintf(out.stderr, "evidence report: %d episodes from %d sources in %d organisations, checkpoint %d (%d records): wrote %s",
			len(rep.Episodes), len(rep.Sources), len(rep.Organisations), rep.Checkpoint.Seq, rep.Checkpoint.Size, *output)
		if chart != nil {
			fmt.Fprintf(out.stderr, " and its chart")
		}
		fmt.Fprintln(out.stderr)
		for _, p := range rep.Problems {
			fmt.Fprintf(out.stderr, "evidence report: %s\n", p)
		}
		return nil
	}
}
