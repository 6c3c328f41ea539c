package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashHelperEnv, when set to a file path, makes TestCrashHelper act as the
// child process of TestKill9.
const crashHelperEnv = "WARDEN_REGISTRY_CRASH_HELPER"

// TestCrashHelper is not a test: run by TestKill9 in a child process, it
// adds and revokes entries on the registry named by crashHelperEnv forever,
// printing a line after each call returns, until it is killed.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	start, _ := strconv.Atoi(os.Getenv(crashHelperEnv + "_START"))
	ctx := context.Background()
	r, err := Open(path, nil)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := start; ; i++ {
		if _, err := r.Add(ctx, Entry{V1: hv1(i), V2: hv2(i), Name: strconv.Itoa(i)}, "crash"); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(out, "add %d\n", i)
		out.Flush() // the line leaves the process only after Add returned
		if i%3 == 0 {
			if _, err := r.Revoke(ctx, hv2(i).Truncate(), "reason "+strconv.Itoa(i), "crash"); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(1)
			}
			fmt.Fprintf(out, "revoke %d\n", i)
			out.Flush()
		}
	}
}

// TestKill9 kills a writing process with SIGKILL at arbitrary points and
// checks that every change it acknowledged survives, several times over on
// the same file.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	added := map[int]bool{}
	revoked := map[int]bool{}
	next := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+path, fmt.Sprintf("%s_START=%d", crashHelperEnv, next))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + rng.IntN(60) // acknowledged lines before the kill
		sc := bufio.NewScanner(stdout)
		seen := 0
		deadline := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		for sc.Scan() {
			line := sc.Text()
			var n int
			switch {
			case strings.HasPrefix(line, "add "):
				n, _ = strconv.Atoi(line[4:])
				added[n] = true
				next = max(next, n+1)
			case strings.HasPrefix(line, "revoke "):
				n, _ = strconv.Atoi(line[7:])
				revoked[n] = true
			case strings.HasPrefix(line, "error "):
				t.Fatalf("round %d: helper failed: %s", round, line)
			default:
				continue // test framework chatter
			}
			if seen++; seen == killAfter {
				// SIGKILL while the child is mid-way through its next change;
				// lines it printed before dying are still read below.
				cmd.Process.Kill()
			}
		}
		deadline.Stop()
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys() == nil || !strings.Contains(exit.String(), "killed") {
			t.Fatalf("round %d: helper exited with %v, want killed", round, err)
		}
		if seen < killAfter {
			t.Fatalf("round %d: helper printed %d lines before dying, want %d", round, seen, killAfter)
		}
		next++ // the change in flight may or may not have landed; never reuse its number

		r, err := Open(path, nil)
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for n := range added {
			st, reason, ok := r.Lookup(hv1(n))
			if !ok {
				t.Fatalf("round %d: acknowledged add %d lost", round, n)
			}
			if revoked[n] && (st != Revoked || reason != "reason "+strconv.Itoa(n)) {
				t.Fatalf("round %d: acknowledged revoke %d lost: %v %q", round, n, st, reason)
			}
			if revoked[n] && round == 3 { // the audit row went with it
				if h, err := r.History(context.Background(), hv1(n)); err != nil || len(h) != 2 {
					t.Fatalf("History(entry %d) = %d changes, %v; want 2", n, len(h), err)
				}
			}
		}
		t.Logf("round %d: killed after %d acknowledged changes; %d entries, all present", round, seen, r.Len())
		r.Close()
	}
}
