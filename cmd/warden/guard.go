package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

const guardUsage = `usage: warden guard <command> [flags]

Shows and manages the sources warden has banned for flooding it, through
the admin API of a running warden serve.

commands:
  bans                       list the bans in force and the limiter's counters
  unban ADDR|CIDR            lift a ban
  export [--format nft|ipset] print the bans as a kernel script, so the kernel
                             drops them before they reach warden:
                             warden guard export | nft -f -   (see docs/deploy.md)

common flags (before or after the arguments):
  --admin URL   admin API (default http://127.0.0.1:7070)
  --data DIR    where to find admin.token (default ./warden-data);
                $WARDEN_TOKEN overrides the file
  --json        print JSON instead of a table (bans)
`

func runGuard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, guardUsage)
		return nil
	}
	fs := flag.NewFlagSet("guard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, guardUsage) }
	var common registryFlags
	common.register(fs)
	format := fs.String("format", "nft", "export `format`: nft or ipset")
	cmd, pos, err := parseCommand(fs, args, guardUsage, stderr)
	if err != nil {
		return err
	}
	var run func(c *adminClient) error
	switch cmd {
	case "bans":
		if len(pos) != 0 {
			return usageError{errors.New("guard bans: takes no arguments")}
		}
		run = func(c *adminClient) error {
			resp, err := c.Bans(ctx)
			if err != nil {
				return err
			}
			if common.json {
				return writeJSONTo(stdout, resp)
			}
			st := resp.Stats
			fmt.Fprintf(stdout, "allowed %d, limited %d, banned %d requests; %d bans imposed, %d refused (ban table full)\n",
				st.Allowed, st.Limited, st.Banned, st.BansImposed, st.BansRefused)
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tSINCE\tUNTIL\tSTRIKES\tDROPPED")
			for _, b := range resp.Bans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", b.Prefix, b.Since.Format(time.DateTime), b.Until.Format(time.DateTime), b.Strikes, b.Dropped)
			}
			fmt.Fprintln(tw, "\nTOP OFFENDERS\tREFUSED (≈)\tFIRST SEEN\tLAST SEEN")
			for _, e := range resp.TopOffenders {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Key, e.Count*64, e.FirstSeen.Format(time.DateTime), e.LastSeen.Format(time.DateTime))
			}
			return tw.Flush()
		}
	case "unban":
		if len(pos) != 1 {
			return usageError{errors.New("guard unban: want one ADDR or CIDR")}
		}
		run = func(c *adminClient) error {
			if err := c.Unban(ctx, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "unbanned %s\n", pos[0])
			return nil
		}
	case "export":
		if len(pos) != 0 {
			return usageError{errors.New("guard export: takes no arguments")}
		}
		if *format != "nft" && *format != "ipset" {
			return usageError{fmt.Errorf("guard export: --format %q: want nft or ipset", *format)}
		}
		run = func(c *adminClient) error {
			text, err := c.Export(ctx, *format)
			if err != nil {
				return err
			}
			_, err = io.WriteString(stdout, text)
			return err
		}
	default:
		fmt.Fprint(stderr, guardUsage)
		return usageError{fmt.Errorf("guard: unknown command %q", strings.TrimSpace(cmd))}
	}
	c, err := common.client()
	if err != nil {
		return err
	}
	return run(c)
}
