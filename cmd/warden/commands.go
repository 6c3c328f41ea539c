package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// commands is warden's command table, in the order `warden help` lists
// them. A new command is one entry here and a file of its own.
var commands = []*command{
	serveCommand,
	registryCommand,
	guardCommand,
	loadCommand,
	torrentCommand,
	publishCommand,
	evidenceCommand,
	versionCommand,
}

// A command is one entry of the table: a leaf that runs, or a group
// ("registry") whose entries are its subcommands.
type command struct {
	name    string
	args    string // what follows the name in the synopsis, e.g. "HASH --reason TEXT"
	summary string // one line, for the list of commands
	help    string // what `warden help NAME` prints after the synopsis; may be empty

	// setup declares the command's flags on fs and returns the function
	// that runs it once they are parsed. Flags may come before or after
	// the positional arguments.
	setup func(fs *flag.FlagSet) runFunc

	// sub are a group's commands; a group has no setup.
	sub []*command
}

// runFunc runs a command with its positional arguments.
type runFunc func(ctx context.Context, out streams, args []string) error

const intro = "warden: a BitTorrent tracker for publishers who share their own content.\n"

// run dispatches a command line. Help asked for (`warden help X`,
// `warden X -h`) goes to stdout and returns flag.ErrHelp; a mistake
// prints the relevant usage to stderr and returns a usageError.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	out := streams{stdout, stderr}
	if len(args) == 0 {
		writeList(stderr, "warden", commands)
		return usageError{errors.New("no command given")}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return help(stdout, args[1:])
	case "--version", "-version":
		args = []string{"version"}
	}
	path, cmd, rest, err := find(commands, args)
	if err != nil {
		return err
	}
	if cmd.sub != nil {
		if len(rest) > 0 && isHelpFlag(rest[0]) {
			writeHelp(stdout, path, cmd)
			return flag.ErrHelp
		}
		writeHelp(stderr, path, cmd)
		if len(rest) == 0 {
			return usageError{fmt.Errorf("%s: no command given", path)}
		}
		return usageError{fmt.Errorf("%s: unknown command %q", path, rest[0])}
	}
	fs, runCmd := cmd.flagSet(path)
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(stdout, path, cmd)
		return err
	}
	if err != nil {
		return usageError{fmt.Errorf("%s: %w (see: warden help %s)", path, err, path)}
	}
	return runCmd(ctx, out, pos)
}

// find walks the table down args and returns the command named, its full
// name ("registry add") and the arguments after it. It stops at a group
// whose next argument names none of its commands.
func find(table []*command, args []string) (path string, cmd *command, rest []string, err error) {
	path = "warden"
	for {
		c := lookup(table, args[0])
		if c == nil {
			if cmd != nil {
				return path, cmd, args, nil // a group given an unknown command
			}
			return "", nil, nil, usageError{fmt.Errorf("unknown command %q (see: warden help)", args[0])}
		}
		if cmd == nil {
			path = c.name
		} else {
			path += " " + c.name
		}
		cmd, args = c, args[1:]
		if c.sub == nil || len(args) == 0 {
			return path, cmd, args, nil
		}
		table = c.sub
	}
}

func lookup(table []*command, name string) *command {
	for _, c := range table {
		if c.name == name {
			return c
		}
	}
	return nil
}

func isHelpFlag(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// help prints the help of the command args name, or the list of commands.
func help(w io.Writer, args []string) error {
	if len(args) == 0 {
		writeList(w, "warden", commands)
		return nil
	}
	path, cmd, rest, err := find(commands, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("help: %s has no command %q", path, rest[0])}
	}
	writeHelp(w, path, cmd)
	return nil
}

// flagSet returns the command's flags and the function that runs it. The
// flag package's own messages are silenced: run reports errors itself.
func (c *command) flagSet(path string) (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs, c.setup(fs)
}

// writeList prints the usage line and the commands of a table.
func writeList(w io.Writer, path string, table []*command) {
	full := "warden"
	if path == "warden" {
		fmt.Fprint(w, intro+"\n")
	} else {
		full += " " + path
	}
	fmt.Fprintf(w, "usage: %s <command> [flags] [args]\n\ncommands:\n", full)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range table {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	example := strings.TrimPrefix(strings.TrimPrefix(full, "warden")+" "+table[0].name, " ")
	fmt.Fprintln(tw, "  help\tprint help for a command: warden help "+example)
	tw.Flush()
}

// writeHelp prints a command's synopsis, help and flags, or a group's
// commands.
func writeHelp(w io.Writer, path string, c *command) {
	if c.sub != nil {
		fmt.Fprintf(w, "%s: %s\n\n", path, c.summary)
		if c.help != "" {
			fmt.Fprint(w, strings.TrimSpace(c.help)+"\n\n")
		}
		writeList(w, path, c.sub)
		return
	}
	synopsis := "usage: warden " + path
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "%s\n\n%s.\n", synopsis, upperFirst(c.summary))
	if c.help != "" {
		fmt.Fprint(w, "\n"+strings.TrimSpace(c.help)+"\n")
	}
	fs, _ := c.flagSet(path)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parseInterspersed parses flags that may come before or after positional
// arguments, as in "revoke HASH --reason spam". Everything after "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, tail = args[:i], args[i+1:]
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
