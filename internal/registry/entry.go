package registry

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"warden/internal/bittorrent"
)

// HashV2 is a full BitTorrent v2 info hash: the SHA-256 of a v2 info
// dictionary. Clients announce it truncated to 20 bytes (BEP 52); see
// [HashV2.InfoHash].
type HashV2 [32]byte

// InfoHash returns the first 20 bytes of h, which is what a client sends to
// a tracker for a v2 torrent.
func (h HashV2) InfoHash() bittorrent.InfoHash {
	return bittorrent.InfoHash(h[:20])
}

// IsZero reports whether h is all zeros, which the registry reads as "no v2
// hash".
func (h HashV2) IsZero() bool { return h == HashV2{} }

// String returns h as 64 lowercase hex digits.
func (h HashV2) String() string { return hex.EncodeToString(h[:]) }

// MarshalText returns h as 64 lowercase hex digits.
func (h HashV2) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText accepts exactly 64 hex digits.
func (h *HashV2) UnmarshalText(b []byte) error {
	v, err := ParseHashV2(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ErrBadHashV2 is returned by [ParseHashV2] for input that is not 64 hex
// digits.
var ErrBadHashV2 = errors.New("v2 info hash must be 64 hex digits")

// ParseHashV2 parses a full v2 info hash written as 64 hex digits.
func ParseHashV2(s string) (HashV2, error) {
	var h HashV2
	if len(s) != 64 {
		return h, fmt.Errorf("%q: %w", clip(s, 80), ErrBadHashV2)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%q: %w", clip(s, 80), ErrBadHashV2)
	}
	return h, nil
}

// State is whether a registered torrent is tracked.
type State uint8

// The states of an entry. The zero State is not a state: in a [Filter] it
// matches every entry, and in a [Change] it is the old state of an addition.
const (
	Active  State = 1 // tracked: announces and scrapes are answered
	Revoked State = 2 // registered but refused, with a reason
)

// String returns "active" or "revoked", as stored in the database.
func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Revoked:
		return "revoked"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) {
	if s != Active && s != Revoked {
		return nil, fmt.Errorf("registry: invalid state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText accepts "active" or "revoked".
func (s *State) UnmarshalText(b []byte) error {
	v, ok := parseState(string(b))
	if !ok {
		return fmt.Errorf("registry: unknown state %q (want active or revoked)", clip(string(b), 40))
	}
	*s = v
	return nil
}

func parseState(s string) (State, bool) {
	switch s {
	case "active":
		return Active, true
	case "revoked":
		return Revoked, true
	}
	return 0, false
}

// Entry is one registered torrent. A torrent has a v1 hash, a v2 hash, or
// both (a hybrid torrent, reachable by its v1 hash and by its truncated v2
// hash). An all-zero hash means "absent".
type Entry struct {
	ID        int64               `json:"id"` // assigned by the registry; ignored by Add
	V1        bittorrent.InfoHash `json:"v1,omitzero"`
	V2        HashV2              `json:"v2,omitzero"`
	Name      string              `json:"name"`
	State     State               `json:"state"`
	Reason    string              `json:"reason,omitempty"` // why it was revoked; empty while active
	AddedBy   string              `json:"added_by"`
	AddedAt   time.Time           `json:"added_at"`
	ChangedBy string              `json:"changed_by"` // who made the last change; AddedBy until then
	ChangedAt time.Time           `json:"changed_at"`
}

// HasV1 reports whether e has a v1 info hash.
func (e Entry) HasV1() bool { return e.V1 != bittorrent.InfoHash{} }

// HasV2 reports whether e has a v2 info hash.
func (e Entry) HasV2() bool { return !e.V2.IsZero() }

// InfoHashes returns the hashes a client may announce for e: its v1 hash
// and its truncated v2 hash, each if present.
func (e Entry) InfoHashes() []bittorrent.InfoHash {
	ks, n := e.keys()
	return append([]bittorrent.InfoHash(nil), ks[:n]...)
}

func (e *Entry) keys() (ks [2]bittorrent.InfoHash, n int) {
	if e.HasV1() {
		ks[n] = e.V1
		n++
	}
	if e.HasV2() {
		ks[n] = e.V2.InfoHash()
		n++
	}
	return ks, n
}

// Filter selects entries for [Registry.List]. The zero Filter selects every
// entry.
type Filter struct {
	State State // Active or Revoked; 0 matches both
	// NameContains keeps entries whose name contains it, ignoring ASCII case.
	NameContains string
	AfterID      int64 // only entries with ID > AfterID, for paging
	Limit        int   // at most this many; 0 means no limit
}

// Action is what a [Change] did.
type Action string

// The actions recorded in the audit log.
const (
	ActionAdd     Action = "add"
	ActionRevoke  Action = "revoke"
	ActionRestore Action = "restore"
)

// Change is one row of the append-only audit log, written in the same
// transaction as the change it records.
type Change struct {
	Seq      int64               `json:"seq"` // increasing; the log's order
	At       time.Time           `json:"at"`
	Actor    string              `json:"actor"`
	Action   Action              `json:"action"`
	ID       int64               `json:"id"` // the entry changed
	V1       bittorrent.InfoHash `json:"v1,omitzero"`
	V2       HashV2              `json:"v2,omitzero"`
	Name     string              `json:"name"`
	OldState State               `json:"old_state,omitzero"` // 0 for ActionAdd
	NewState State               `json:"new_state"`
	Reason   string              `json:"reason,omitempty"` // the revocation reason, for ActionRevoke
}

// Limits on the text an entry carries, in bytes.
const (
	MaxNameBytes   = 4096
	MaxReasonBytes = 1024
	MaxActorBytes  = 256
)

// checkText rejects text that is too long, is not UTF-8, or holds control
// characters (which would garble logs and the admin UI).
func checkText(field, s string, maxBytes int, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%w: %s is required", ErrInvalid, field)
	case len(s) > maxBytes:
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalid, field, len(s), maxBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: %s contains control character %U", ErrInvalid, field, r)
		}
	}
	return nil
}

// checkNew validates the parts of e that Add reads.
func checkNew(e *Entry) error {
	if !e.HasV1() && !e.HasV2() {
		return fmt.Errorf("%w: an entry needs a v1 or a v2 info hash", ErrInvalid)
	}
	if e.HasV1() && e.HasV2() && e.V1 == e.V2.InfoHash() {
		return fmt.Errorf("%w: v1 hash %s equals the truncated v2 hash", ErrInvalid, e.V1)
	}
	return checkText("name", e.Name, MaxNameBytes, false)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
