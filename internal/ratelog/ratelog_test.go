package ratelog

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// record captures what a Logger writes as "msg suppressed=N" lines.
func record() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), &buf
}

func TestLog(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		calls []time.Duration // offsets from start of each call
		want  []string        // lines written
	}{
		{name: "one", calls: []time.Duration{0},
			want: []string{"msg=boom err=e suppressed=0"}},
		{name: "burst held back", calls: []time.Duration{0, 1, 2, time.Second - 1},
			want: []string{"msg=boom err=e suppressed=0"}},
		{name: "count goes with the next line", calls: []time.Duration{0, 1, 2, time.Second},
			want: []string{"msg=boom err=e suppressed=0", "msg=boom err=e suppressed=2"}},
		{name: "quiet interval", calls: []time.Duration{0, time.Second, 5 * time.Second},
			want: []string{"msg=boom err=e suppressed=0", "msg=boom err=e suppressed=0", "msg=boom err=e suppressed=0"}},
		{name: "clock steps back", calls: []time.Duration{time.Hour, 0, time.Hour + time.Second},
			want: []string{"msg=boom err=e suppressed=0", "msg=boom err=e suppressed=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := record()
			var now time.Time
			l := New(log, slog.LevelWarn, time.Second, func() time.Time { return now })
			for _, off := range tt.calls {
				now = start.Add(off)
				l.Log("boom", slog.Any("err", errors.New("e")))
			}
			got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("calls at %v wrote\n%s\nwant\n%s", tt.calls, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestLogLevelDisabled(t *testing.T) {
	log, buf := record() // Info and up
	l := New(log, slog.LevelDebug, time.Nanosecond, nil)
	l.Log("quiet")
	if buf.Len() != 0 {
		t.Errorf("a Debug line reached an Info logger: %q", buf)
	}
}

func TestLogHeldBackDoesNotAllocate(t *testing.T) {
	log, _ := record()
	now := time.Unix(1e9, 0)
	l := New(log, slog.LevelError, time.Hour, func() time.Time { return now })
	err := errors.New("e")
	l.Log("first")
	if n := testing.AllocsPerRun(100, func() {
		l.Log("tracker error", slog.Any("err", err), slog.String("op", "announce"))
	}); n != 0 {
		t.Errorf("a held-back line allocates %v times, want 0", n)
	}
}

// TestLogConcurrent checks that every call is either written or counted,
// and that racing callers write one line per interval.
func TestLogConcurrent(t *testing.T) {
	log, buf := record()
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := New(log, slog.LevelError, time.Minute, clock)
	const goroutines, calls = 8, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls {
				l.Log("x")
			}
		})
	}
	wg.Wait()
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	l.Log("x")
	want := "msg=x suppressed=0\nmsg=x suppressed=" + strconv.Itoa(goroutines*calls-1) + "\n"
	if buf.String() != want {
		t.Errorf("wrote\n%s\nwant\n%s", buf, want)
	}
}
