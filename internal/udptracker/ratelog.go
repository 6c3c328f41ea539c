package udptracker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// rateLog writes at most one line per interval for one kind of event and
// counts the lines it held back, reporting them with the next line it
// writes. It is for events a remote party can cause, such as a flood of
// packets that makes every send fail. Safe for concurrent use; a held-back
// line costs two atomic operations and no allocation.
type rateLog struct {
	log      *slog.Logger
	level    slog.Level
	msg      string
	interval time.Duration

	next       atomic.Int64 // UnixNano before which lines are held back
	suppressed atomic.Uint64
}

func newRateLog(log *slog.Logger, level slog.Level, msg string, interval time.Duration) *rateLog {
	return &rateLog{log: log, level: level, msg: msg, interval: interval}
}

// emit writes the line with err unless one was written less than interval
// before now.
func (r *rateLog) emit(now time.Time, err error) {
	n := r.next.Load()
	t := now.UnixNano()
	if t < n || !r.next.CompareAndSwap(n, t+int64(r.interval)) {
		r.suppressed.Add(1)
		return
	}
	r.log.Log(context.Background(), r.level, r.msg, "err", err, "suppressed", r.suppressed.Swap(0))
}
