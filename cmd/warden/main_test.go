package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.toml")
	os.WriteFile(badConfig, []byte("[tracker]\nmode = \"closed\"\n"), 0o600)
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{name: "no command", args: nil, wantErr: "no command given", wantCode: 2},
		{name: "unknown command", args: []string{"fly"}, wantErr: `unknown command "fly"`, wantCode: 2},
		{name: "version", args: []string{"version"}, wantOut: "warden "},
		{name: "help", args: []string{"help"}, wantOut: "commands:"},
		{name: "help serve", args: []string{"help", "serve"}, wantOut: "-mode mode"},
		{name: "serve -h", args: []string{"serve", "-h"}, wantOut: "-mode mode", wantErr: flag.ErrHelp.Error()},
		{name: "help registry add", args: []string{"help", "registry", "add"}, wantOut: "-from file"},
		{name: "registry add --help", args: []string{"registry", "add", "--help"}, wantOut: "-from file", wantErr: flag.ErrHelp.Error()},
		{name: "help registry", args: []string{"help", "registry"}, wantOut: "revoke"},
		{name: "registry -h", args: []string{"registry", "-h"}, wantOut: "revoke", wantErr: flag.ErrHelp.Error()},
		{name: "help unknown", args: []string{"help", "fly"}, wantErr: `unknown command "fly"`, wantCode: 2},
		{name: "help unknown sub", args: []string{"help", "registry", "fly"}, wantErr: `registry has no command "fly"`, wantCode: 2},
		{name: "version extra", args: []string{"version", "now"}, wantErr: `unexpected argument "now"`, wantCode: 2},
		{name: "serve bad flag", args: []string{"serve", "--nope"}, wantErr: "serve: flag provided but not defined: -nope (see: warden help serve)", wantCode: 2},
		{name: "serve bad mode", args: []string{"serve", "--mode", "closed"}, wantErr: `--mode: "closed" is not one of`, wantCode: 2},
		{name: "serve stray argument", args: []string{"serve", "now"}, wantErr: `unexpected argument "now"`, wantCode: 2},
		{name: "serve bad config", args: []string{"serve", "--config", badConfig}, wantErr: "is not one of", wantCode: 1},
		{name: "serve nothing to serve", args: []string{"serve", "--http", "", "--udp", ""}, wantErr: "nothing to serve", wantCode: 2},
		{name: "serve public admin", args: []string{"serve", "--admin", "0.0.0.0:7070"}, wantErr: "every interface", wantCode: 2},
		{name: "registry no command", args: []string{"registry"}, wantErr: "no command given", wantCode: 2},
		{name: "registry unknown", args: []string{"registry", "fly"}, wantErr: `registry: unknown command "fly"`, wantCode: 2},
		{name: "guard bad format", args: []string{"guard", "export", "--format", "pf"}, wantErr: `--format "pf": want nft or ipset`, wantCode: 2},
		{name: "flags after --", args: []string{"registry", "show", "--", "--json"}, wantErr: "admin token", wantCode: 1},
		{name: "revoke without reason", args: []string{"registry", "revoke", strings.Repeat("ab", 20)}, wantErr: "--reason is required", wantCode: 2},
		{name: "revoke two hashes", args: []string{"registry", "revoke", "a", "b", "--reason", "x"}, wantErr: "want one HASH", wantCode: 2},
		{name: "add nothing", args: []string{"registry", "add"}, wantErr: "give a .torrent file", wantCode: 2},
		{name: "add garbage", args: []string{"registry", "add", "not-a-hash"}, wantErr: "not a magnet link", wantCode: 1},
		{name: "add name for many", args: []string{"registry", "add", strings.Repeat("ab", 20), strings.Repeat("cd", 20), "--name", "x"}, wantErr: "--name names a single torrent", wantCode: 2},
		{name: "list without token", args: []string{"registry", "list", "--data", dir}, wantErr: "admin token", wantCode: 1},
		{name: "flags after args", args: []string{"registry", "revoke", strings.Repeat("ab", 20), "--data", dir, "--reason", "x"}, wantErr: "admin token", wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WARDEN_TOKEN", "")
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("run(%q) = %v", tt.args, err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
				}
				if !errors.Is(err, flag.ErrHelp) && exitCode(err) != tt.wantCode {
					t.Fatalf("run(%q) exit code %d, want %d", tt.args, exitCode(err), tt.wantCode)
				}
			}
			if !strings.Contains(out.String()+errOut.String(), tt.wantOut) {
				t.Fatalf("run(%q) printed %q, want %q in it", tt.args, out.String()+errOut.String(), tt.wantOut)
			}
		})
	}
}

// TestHelpEveryCommand checks that every entry of the command table,
// and every command of a group, has help that `warden help` prints to
// stdout, and that the list of commands names them all.
func TestHelpEveryCommand(t *testing.T) {
	var list bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &list, io.Discard); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix []string, table []*command)
	walk = func(prefix []string, table []*command) {
		for _, c := range table {
			args := append(append([]string{"help"}, prefix...), c.name)
			var out, errOut bytes.Buffer
			if err := run(context.Background(), args, &out, &errOut); err != nil || errOut.Len() > 0 {
				t.Errorf("warden %s: %v, stderr %q", strings.Join(args, " "), err, errOut.String())
			}
			if !strings.Contains(out.String(), c.summary[1:]) { // the first letter may be capitalized
				t.Errorf("warden %s printed %q, want the summary %q", strings.Join(args, " "), out.String(), c.summary)
			}
			if len(prefix) == 0 && !strings.Contains(list.String(), "  "+c.name) {
				t.Errorf("warden help does not list %s:\n%s", c.name, list.String())
			}
			walk(append(prefix, c.name), c.sub)
		}
	}
	walk(nil, commands)
}

func TestAdminURL(t *testing.T) {
	tests := []struct {
		in, want string // want "" for a usage error
	}{
		{"http://127.0.0.1:7070", "http://127.0.0.1:7070"},
		{"http://127.0.0.1:7070/", "http://127.0.0.1:7070"},
		{"127.0.0.1:7070", "http://127.0.0.1:7070"}, // as serve --admin takes it
		{"[::1]:7070", "http://[::1]:7070"},
		{"https://admin.example:8443", "https://admin.example:8443"},
		{"ftp://127.0.0.1:7070", ""},
		{"http://", ""},
		{"127.0.0.1:7070 x", ""},
	}
	for _, tt := range tests {
		got, err := adminURL(tt.in)
		if tt.want == "" {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("adminURL(%q) = %q, %v; want a usage error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("adminURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
