package evidence

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary a writer that appends until killed.
const childEnv = "WARDEN_EVIDENCE_KILL_CHILD"

// TestKill9Child is the child of TestKill9: it appends records of
// iteration $WARDEN_EVIDENCE_KILL_CHILD with Run flushing them, and prints
// "seq unix-ns" once each Append has returned. It stops by itself after
// 30 s.
func TestKill9Child(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("the child of TestKill9")
	}
	dir, iter, _ := strings.Cut(spec, ":")
	l, err := Open(dir, DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	go l.Run(context.Background())
	fmt.Println("ready")
	deadline := time.Now().Add(30 * time.Second)
	for seq := 0; time.Now().Before(deadline); seq++ {
		r, err := NewRecord(KindEpisode, time.Now(), map[string]any{"iter": iter, "seq": seq})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%d %d\n", seq, time.Now().UnixNano())
		time.Sleep(2 * time.Millisecond)
	}
	l.Close()
}

// TestKill9 kills a writer with SIGKILL 20 times while it appends. After
// each kill the log verifies as it is, every record appended more than a
// second before the kill is there, none is missing in between, and the
// next Open signs what was left unsigned.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 30 s")
	}
	dir := t.TempDir()
	var worst time.Duration // longest time between an Append and the kill that lost it
	for iter := range 20 {
		appended, killedAt := runAndKill(t, dir, iter, time.Duration(1100+rand.IntN(500))*time.Millisecond)

		rep, err := Verify(context.Background(), dir, VerifyOptions{})
		if err != nil {
			t.Fatalf("kill %d: the log does not verify as left: %v", iter, err)
		}
		have := seqsOf(t, dir, iter)
		for i, s := range have {
			if s != i {
				t.Fatalf("kill %d: record seq %d at position %d: records missing in between", iter, s, i)
			}
		}
		for seq := len(have); seq < len(appended); seq++ {
			lost := killedAt.Sub(appended[seq])
			if lost > time.Second {
				t.Fatalf("kill %d: record %d, appended %v before the kill, is lost (%d of %d kept)", iter, seq, lost, len(have), len(appended))
			}
			worst = max(worst, lost)
		}
		l, err := Open(dir, DefaultConfig(), nil)
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", iter, err)
		}
		l.Close()
		after := mustVerify(t, dir, VerifyOptions{})
		if after.Unsigned != 0 || after.Records != rep.Records {
			t.Fatalf("kill %d: after reopen %d records, %d unsigned; want %d, 0", iter, after.Records, after.Unsigned, rep.Records)
		}
		t.Logf("kill %d: %d appended, %d kept (%d unsigned at the kill), %d records in the log", iter, len(appended), len(have), rep.Unsigned, rep.Records)
	}
	t.Logf("longest an appended record waited before a kill lost it: %v", worst)
}

// runAndKill starts the child for iteration iter, kills it with SIGKILL
// after d, and returns when each record was appended (by its seq) and
// when the kill was sent.
func runAndKill(t *testing.T, dir string, iter int, d time.Duration) ([]time.Time, time.Time) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", childEnv, dir, iter))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // by PID, if the test fails before the kill
	lines := make(chan string, 1<<16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "ready" {
			t.Fatalf("child said %q, want ready", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("child not ready after 20 s")
	}
	time.Sleep(d)
	killedAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var appended []time.Time
	for l := range lines {
		seq, ns, ok := strings.Cut(l, " ")
		s, err1 := strconv.Atoi(seq)
		n, err2 := strconv.ParseInt(ns, 10, 64)
		if !ok || err1 != nil || err2 != nil || s != len(appended) {
			continue // a line cut by the kill, or test output
		}
		appended = append(appended, time.Unix(0, n))
	}
	cmd.Wait()
	return appended, killedAt
}

// seqsOf returns the seq of every record of iteration iter, in log order.
func seqsOf(t *testing.T, dir string, iter int) []int {
	t.Helper()
	db, _, err := openForRead(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT data FROM records WHERE kind = 'episode' ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var seqs []int
	for rows.Next() {
		var data sql.NullString
		rows.Scan(&data)
		var lf struct {
			Body struct {
				Iter string `json:"iter"`
				Seq  int    `json:"seq"`
			} `json:"body"`
		}
		if err := json.Unmarshal([]byte(data.String), &lf); err != nil {
			t.Fatal(err)
		}
		if lf.Body.Iter == strconv.Itoa(iter) {
			seqs = append(seqs, lf.Body.Seq)
		}
	}
	return seqs
}
