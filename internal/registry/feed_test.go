package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testFeed is a ChangeFeed the test drives: Wait returns when signalled, or
// at once with err while err is set.
type testFeed struct {
	signals chan struct{}

	mu  sync.Mutex // guards the fields below
	err error
}

func newTestFeed() *testFeed { return &testFeed{signals: make(chan struct{})} }

func (f *testFeed) Wait(ctx context.Context) error {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-f.signals:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *testFeed) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// signal says "changed", waiting until Follow takes it.
func (f *testFeed) signal(t *testing.T) {
	t.Helper()
	select {
	case f.signals <- struct{}{}:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow is not waiting on its feed")
	}
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func follow(t *testing.T, r *Registry, feed ChangeFeed) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Follow(ctx, feed) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Follow returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Follow did not return after cancel")
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("follower did not see %s within 2s", what)
		}
	}
}

// TestFollowFeed checks that the feed, not a clock, decides when a follower
// looks at the file.
func TestFollowFeed(t *testing.T) {
	writer, path := openTest(t)
	follower := openPath(t, path)
	feed := newTestFeed()
	defer follow(t, follower, feed)()

	e := mustAdd(t, writer, Entry{V1: hv1(1)})
	time.Sleep(3 * PollInterval)
	if follower.Tracked(e.V1) {
		t.Fatal("follower reloaded without a signal from its feed")
	}
	feed.signal(t)
	waitUntil(t, "the add after a signal", func() bool { return follower.Tracked(e.V1) })

	// A signal with nothing new costs a read and changes nothing.
	before := follower.snap.Load()
	feed.signal(t)
	feed.signal(t) // the first has been handled once the second is taken
	if follower.snap.Load() != before {
		t.Error("a signal without a change replaced the snapshot")
	}
}

// TestFollowFeedFails checks that a failing feed degrades to polling, is
// logged once per outage, and is used again when it recovers.
func TestFollowFeedFails(t *testing.T) {
	writer, path := openTest(t)
	var logs logBuffer
	follower, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	feed := newTestFeed()
	feed.setErr(errors.New("redis: connection refused"))
	defer follow(t, follower, feed)()

	for i := range 3 {
		e := mustAdd(t, writer, Entry{V1: hv1(i)})
		waitUntil(t, "an add while the feed fails", func() bool { return follower.Tracked(e.V1) })
	}
	if n := logs.count("change feed failed"); n != 1 {
		t.Errorf("%d log lines for one feed outage, want 1", n)
	}

	feed.setErr(nil)
	feed.signal(t) // taken only once Follow waits on the feed again
	waitUntil(t, "the feed recover", func() bool { return logs.count("change feed recovered") == 1 })
	e := mustAdd(t, writer, Entry{V1: hv1(10)})
	time.Sleep(3 * PollInterval)
	if follower.Tracked(e.V1) {
		t.Fatal("follower still polls after its feed recovered")
	}
	feed.signal(t)
	waitUntil(t, "an add after the feed recovered", func() bool { return follower.Tracked(e.V1) })
}

// TestFollowReturnsOnClose closes a Registry while Follow waits on a feed
// that would never signal.
func TestFollowReturnsOnClose(t *testing.T) {
	r, _ := openTest(t)
	done := make(chan error, 1)
	go func() { done <- r.Follow(context.Background(), newTestFeed()) }()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Follow returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
}

func TestPoller(t *testing.T) {
	start := time.Now()
	if err := (Poller{Interval: 20 * time.Millisecond}).Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Errorf("Wait returned after %v, before its interval", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Poller{Interval: time.Hour}).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestFollowSkipsOwnChanges follows the file closely while this process
// changes it: the follower must never reload the whole registry for a
// change the writer already put in the snapshot. (A poll that read the new
// generation just before the writer published used to reload it all, which
// at a million entries is a second and 130 MB of garbage per batch of a
// bulk import.)
func TestFollowSkipsOwnChanges(t *testing.T) {
	var logs logBuffer
	path := filepath.Join(t.TempDir(), "registry.db")
	r, err := Open(path, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := follow(t, r, Poller{Interval: time.Microsecond})
	for i := range 300 {
		mustAdd(t, r, Entry{V1: hv1(i)})
	}
	stop()
	if n := logs.count("registry reloaded after an outside change"); n > 0 {
		t.Errorf("the follower reloaded the registry %d times for this process's own 300 changes", n)
	}
}
