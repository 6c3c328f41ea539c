package registry

import "warden/internal/bittorrent"

// Status is Lookup in the form package tracker asks for: whether ih is
// registered, whether it is revoked, and why. It does not block or
// allocate.
func (r *Registry) Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string) {
	state, reason, ok := r.Lookup(ih)
	return ok, state == Revoked, reason
}

// Generation is the database's change counter as of the snapshot Status
// reads: every committed change, from this process or another, moves it
// before Status can answer differently.
func (r *Registry) Generation() uint64 { return uint64(r.snap.Load().gen) }
