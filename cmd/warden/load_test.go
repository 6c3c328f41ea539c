package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The load command's flags for the HTTP flood and its legit class reach
// the config, and mistakes name the flag.
func TestLoadFlags(t *testing.T) {
	http := []string{"load", "--scenario", "flood", "--http", "http://127.0.0.1:1/announce"}
	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantCode int
	}{
		{name: "mix unknown", args: append(http, "--flood-mix", "loud"), wantErr: `--flood-mix: "loud": unknown mode`, wantCode: 2},
		{name: "mix for udp", args: []string{"load", "--scenario", "flood", "--udp", "127.0.0.1:1", "--flood-mix", "churn"}, wantErr: "--flood-mix: is for HTTP only", wantCode: 2},
		{name: "conns", args: append(http, "--flood-conns", "100000"), wantErr: "--flood-conns: must be 0", wantCode: 2},
		{name: "pipeline", args: append(http, "--flood-pipeline", "0"), wantErr: "--flood-pipeline: must be 1-256", wantCode: 2},
		{name: "hold", args: append(http, "--flood-hold", "-1s"), wantErr: "--flood-hold", wantCode: 2},
		{name: "new conn for udp", args: []string{"load", "--scenario", "flood", "--udp", "127.0.0.1:1", "--legit-new-conn"}, wantErr: "--legit-new-conn: is for HTTP only", wantCode: 2},
		{name: "rt priority", args: append(http, "--legit-rt", "100"), wantErr: "--legit-rt: must be 0", wantCode: 2},
		{name: "rt without legit", args: append(http, "--legit-rt", "5", "--legit-rate", "0"), wantErr: "--legit-rt: needs a legit class", wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != tt.wantCode {
				t.Fatalf("run(%q) = %v (exit %d), want %q (exit %d)", tt.args, err, exitCode(err), tt.wantErr, tt.wantCode)
			}
		})
	}
}

func TestLoadHelpNamesTheModes(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help", "load"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-flood-mix", "pipeline", "churn", "idle", "partial", "-legit-new-conn", "-legit-rt"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("warden help load does not mention %q", want)
		}
	}
}
