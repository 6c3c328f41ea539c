package tracker

import (
	"errors"

	"warden/internal/bittorrent"
	"warden/internal/reqstat"
)

// Outcome classifies what Announce, Scrape or ScrapeAll returned, for the
// frontends' request counters: nil is OK; a refusal is by the rule that
// made it (not registered, revoked, or a bound of the swarm store, which
// counts as Limited); a bittorrent.ClientError is a bad request; anything
// else is the store's failure. It does not allocate for the errors the
// tracker returns.
func (t *Tracker) Outcome(err error) reqstat.Outcome {
	if err == nil {
		return reqstat.OK
	}
	if r, ok := err.(*bittorrent.Refusal); ok {
		return t.refusalOutcome(r)
	}
	if _, ok := err.(bittorrent.ClientError); ok {
		return reqstat.BadRequest
	}
	if _, ok := errors.AsType[bittorrent.ClientError](err); ok {
		return reqstat.BadRequest
	}
	return reqstat.Failed
}

// refusalOutcome tells the tracker's refusals apart by their answer,
// each built once.
func (t *Tracker) refusalOutcome(r *bittorrent.Refusal) reqstat.Outcome {
	switch r {
	case t.refusals.notRegistered:
		return reqstat.RefusedUnregistered
	case t.fullAnswer, t.prefixAnswer:
		return reqstat.Limited
	}
	return reqstat.RefusedRevoked
}
