package registry

import "warden/internal/bittorrent"

// Status is Lookup in the form package tracker asks for: whether ih is
// registered, whether it is revoked, and why. It does not block or
// allocate.
func (r *Registry) Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string) {
	state, reason, ok := r.Lookup(ih)
	return ok, state == Revoked, reason
}
