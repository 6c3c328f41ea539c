// Command warden is a BitTorrent tracker and distribution toolkit for
// publishers who share their own content.
//
//	warden serve [flags]     run the tracker
//	warden registry ...      manage the torrents it tracks
//	warden load [flags]      load-test a tracker
//	warden version           print the version
//	warden help [command]    explain a command
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version or VCS revision from the build info is used.
var version = ""

const usage = `warden: a BitTorrent tracker for publishers who share their own content.

usage: warden <command> [flags]

commands:
  serve     run the tracker (HTTP and UDP, plus the admin API)
  registry  add, revoke, restore and list the torrents warden tracks
  guard     list and lift bans; export them for nftables or ipset
  load      load-test a tracker you operate (loopback only by default)
  version   print the version
  help      print help for a command: warden help serve
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warden:", err)
		os.Exit(exitCode(err))
	}
}

// usageError marks a mistake on the command line (exit status 2).
type usageError struct{ error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "load":
		return runLoad(ctx, rest, stdout, stderr)
	case "registry":
		return runRegistry(ctx, rest, stdout, stderr)
	case "guard":
		return runGuard(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "warden", versionString())
		return nil
	case "help", "-h", "--help", "-help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, usage)
			return nil
		}
		switch rest[0] {
		case "serve", "load", "registry", "guard":
			return run(ctx, []string{rest[0], "-h"}, stdout, stdout)
		case "version", "help":
			fmt.Fprint(stdout, usage)
			return nil
		}
		return usageError{fmt.Errorf("help: unknown command %q", rest[0])}
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
}
