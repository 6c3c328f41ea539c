package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"warden/internal/limit"
)

var guardCommand = &command{
	name:    "guard",
	summary: "list and lift bans; export them for nftables or ipset",
	help: `
Shows and manages the sources the guard (warden's per-source limits, the
[limit] section of the config) has banned for flooding, through the admin
API of a running warden serve. Every command takes --admin ADDR and
--data DIR as the registry commands do.`,
	sub: []*command{
		{name: "bans", summary: "list the bans in force, the guard's counters and the top offenders", setup: setupGuardBans},
		{name: "ban", args: "ADDR|CIDR [--for DURATION]", summary: "ban an address or prefix by hand", setup: setupGuardBan},
		{name: "unban", args: "ADDR|CIDR", summary: "lift a ban", setup: setupGuardUnban},
		{name: "export", args: "[--format nft|ipset]", summary: "print the bans as a kernel script: warden guard export | nft -f - (see docs/deploy.md)", setup: setupGuardExport},
	},
}

func setupGuardBans(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("guard bans", args, 0, "no arguments"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.Bans(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSONTo(out.stdout, resp)
		}
		st := resp.Stats
		fmt.Fprintf(out.stdout, "allowed %d, limited %d, banned %d requests; %d bans imposed, %d refused (ban table full)\n",
			st.Allowed, st.Limited, st.Banned, st.BansImposed, st.BansRefused)
		writeSampleNote(out.stdout, resp.Offenders.SampleRate)
		tw := tabwriter.NewWriter(out.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PREFIX\tSINCE\tUNTIL\tSTRIKES\tDROPPED")
		for _, b := range resp.Bans {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", b.Prefix, b.Since.Format(time.DateTime), b.Until.Format(time.DateTime), b.Strikes, b.Dropped)
		}
		writeKnocks(tw, "TOP OFFENDERS", resp.Offenders.Top)
		return tw.Flush()
	}
}

func setupGuardBan(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	d := fs.Duration("for", time.Hour, "how long the ban lasts")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("guard ban", args, 1, "one ADDR or CIDR"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		b, err := c.Ban(ctx, args[0], *d)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSONTo(out.stdout, b)
		}
		fmt.Fprintf(out.stdout, "banned %s until %s\n", b.Prefix, b.Until.Format(time.DateTime))
		return nil
	}
}

func setupGuardUnban(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("guard unban", args, 1, "one ADDR or CIDR"); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		if err := c.Unban(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(out.stdout, "unbanned %s\n", args[0])
		return nil
	}
}

func setupGuardExport(fs *flag.FlagSet) runFunc {
	var a adminFlags
	a.register(fs)
	format := fs.String("format", "nft", "export `format`: nft or ipset")
	return func(ctx context.Context, out streams, args []string) error {
		if err := wantArgs("guard export", args, 0, "no arguments"); err != nil {
			return err
		}
		if !slices.Contains(limit.ExportFormats, *format) {
			return usageError{fmt.Errorf("guard export: --format %q: want nft or ipset", *format)}
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		text, err := c.Export(ctx, *format)
		if err != nil {
			return err
		}
		_, err = io.WriteString(out.stdout, text)
		return err
	}
}
