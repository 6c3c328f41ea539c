package registry

import (
	"context"
	"time"
)

// A ChangeFeed tells a following Registry when the file may have changed,
// so that it reads the change counter and reloads if the counter moved. The
// default, [Poller], ticks; a cluster can supply a feed driven by pub/sub,
// so reloads follow a change at once without polling.
//
// A feed only says "look now": the file stays the truth. A spurious signal
// costs one one-row read, and a missed one delays a reload until the next
// signal, so a feed that may drop messages should also tick now and then.
type ChangeFeed interface {
	// Wait blocks until the registry may have changed, and returns nil;
	// or until ctx is done, and returns ctx.Err(). Any other error means
	// the feed is failing: Follow logs it, falls back to polling, and
	// calls Wait again.
	Wait(ctx context.Context) error
}

// Poller is the default ChangeFeed: it signals every Interval.
type Poller struct {
	Interval time.Duration
}

// Wait returns after p.Interval, or with ctx.Err() when ctx is done first.
func (p Poller) Wait(ctx context.Context) error {
	t := time.NewTimer(p.Interval)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run follows other processes' changes to the file by polling it every
// PollInterval: it is Follow with a [Poller].
func (r *Registry) Run(ctx context.Context) error {
	return r.Follow(ctx, Poller{Interval: PollInterval})
}

// Follow keeps the snapshot in step with changes other processes make to
// the file: whenever feed signals, it reads the change counter (a one-row
// read) and reloads the snapshot only if the counter moved. It blocks until
// ctx is done or the Registry is closed, and then returns nil. A failed
// check is logged and retried on the next signal, and a failing feed is
// replaced by polling every PollInterval until it recovers; Lookup keeps
// serving the last good snapshot meanwhile. Run one Follow per Registry.
func (r *Registry) Follow(ctx context.Context, feed ChangeFeed) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // Close ends Follow, as it ends every other method
		select {
		case <-r.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	fallback := Poller{Interval: PollInterval}
	var feedFailing, pollFailing bool
	for {
		err := feed.Wait(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			if !feedFailing { // one line per outage, not one per signal
				r.log.Error("registry change feed failed; polling instead", "err", err)
			}
			feedFailing = true
			if fallback.Wait(ctx) != nil {
				return nil
			}
		case feedFailing:
			r.log.Info("registry change feed recovered")
			feedFailing = false
		}

		err = r.poll(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !r.isClosed():
			if !pollFailing {
				r.log.Error("registry poll failed; serving the last snapshot", "err", err)
			}
			pollFailing = true
		case err == nil && pollFailing:
			r.log.Info("registry poll recovered")
			pollFailing = false
		}
	}
}
