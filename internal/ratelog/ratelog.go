// Package ratelog writes log lines that a remote party can cause at will (a
// flood of bad packets, accept errors under a connection flood, a tracker
// error on every request) at most once per interval, so that an attacker
// cannot fill the disk or spend our CPU on logging. Lines held back are
// counted and the count goes out with the next line written.
package ratelog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Logger writes at most one line per interval to a slog.Logger. It is safe
// for concurrent use. A line held back costs a reading of the clock and two
// or three atomic operations, and allocates nothing.
type Logger struct {
	log   *slog.Logger
	level slog.Level
	every time.Duration
	now   func() time.Time

	next       atomic.Int64 // Unix ns before which lines are held back
	suppressed atomic.Uint64
}

// New returns a Logger writing to log at level, at most one line per
// every. now is its clock: a test's fake, or nil for time.Now.
func New(log *slog.Logger, level slog.Level, every time.Duration, now func() time.Time) *Logger {
	if now == nil {
		now = time.Now
	}
	return &Logger{log: log, level: level, every: every, now: now}
}

// Log writes msg with attrs and "suppressed", the number of lines held back
// since the last one written, unless a line was written less than the
// interval ago; then it only counts the line.
func (l *Logger) Log(msg string, attrs ...slog.Attr) {
	t := l.now().UnixNano()
	n := l.next.Load()
	if t < n || !l.next.CompareAndSwap(n, t+int64(l.every)) {
		l.suppressed.Add(1)
		return
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, l.level) {
		return
	}
	// A Record rather than LogAttrs, which would need attrs copied to a
	// new slice to add "suppressed".
	r := slog.NewRecord(time.Unix(0, t), l.level, msg, 0)
	r.AddAttrs(attrs...)
	r.AddAttrs(slog.Uint64("suppressed", l.suppressed.Swap(0)))
	_ = l.log.Handler().Handle(ctx, r)
}
