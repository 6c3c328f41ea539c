package publish

import (
	"context"
	"errors"
	"strings"

	"warden/internal/bittorrent"
	"warden/internal/metainfo"
	"warden/internal/registry"
)

// Registry is what publishing needs of the registry. Both calls are
// idempotent, so a step repeated after a crash changes nothing: warden
// serve gives the registry itself (Local), the publish command the admin
// API.
type Registry interface {
	// Register makes the torrent active: added, or restored if it was
	// revoked (a file put back as it was), or left as it is.
	Register(ctx context.Context, h metainfo.Hashes) error
	// Revoke stops tracking the torrent with reason; a torrent not
	// registered is no error.
	Revoke(ctx context.Context, h metainfo.Hashes, reason string) error
}

// Local is a Registry over r, recording changes as made by actor.
func Local(r *registry.Registry, actor string) Registry { return localRegistry{r, actor} }

type localRegistry struct {
	r     *registry.Registry
	actor string
}

func (l localRegistry) Register(ctx context.Context, h metainfo.Hashes) error {
	e := registry.Entry{Name: RegistryName(h.Name)}
	if h.V1 != nil {
		e.V1 = *h.V1
	}
	if h.V2 != nil {
		e.V2 = *h.V2
	}
	_, err := l.r.Add(ctx, e, l.actor)
	switch {
	case errors.Is(err, registry.ErrRevoked):
		_, err = l.r.Restore(ctx, WireHash(h), l.actor)
		return err
	case errors.Is(err, registry.ErrExists):
		return nil
	}
	return err
}

func (l localRegistry) Revoke(ctx context.Context, h metainfo.Hashes, reason string) error {
	_, err := l.r.Revoke(ctx, WireHash(h), reason, l.actor)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	return err
}

// WireHash is the 20-byte hash a torrent is known by on the wire: its v1
// hash, or its v2 hash truncated.
func WireHash(h metainfo.Hashes) bittorrent.InfoHash {
	if h.V1 != nil {
		return *h.V1
	}
	return h.V2.Truncate()
}

// RegistryName is a file name as the registry takes it: at most
// registry.MaxNameBytes, cut at a character boundary. publish only takes
// names without control characters, which the registry refuses.
func RegistryName(name string) string {
	if len(name) <= registry.MaxNameBytes {
		return name
	}
	return strings.ToValidUTF8(name[:registry.MaxNameBytes], "")
}
