package registry

import (
	"fmt"
	"time"
	"unicode/utf8"

	"warden/internal/bittorrent"
)

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
	ID        int64                 `json:"id"` // assigned by the registry; ignored by Add
	V1        bittorrent.InfoHash   `json:"v1,omitzero"`
	V2        bittorrent.InfoHashV2 `json:"v2,omitzero"`
	Name      string                `json:"name"`
	State     State                 `json:"state"`
	Reason    string                `json:"reason,omitempty"` // why it was revoked; empty while active
	AddedBy   string                `json:"added_by"`
	AddedAt   time.Time             `json:"added_at"`
	ChangedBy string                `json:"changed_by"` // who made the last change; AddedBy until then
	ChangedAt time.Time             `json:"changed_at"`
}

// HasV1 reports whether e has a v1 info hash.
func (e Entry) HasV1() bool { return !e.V1.IsZero() }

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
		ks[n] = e.V2.Truncate()
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
	Seq      int64                 `json:"seq"` // increasing; the log's order
	At       time.Time             `json:"at"`
	Actor    string                `json:"actor"`
	Action   Action                `json:"action"`
	ID       int64                 `json:"id"` // the entry changed
	V1       bittorrent.InfoHash   `json:"v1,omitzero"`
	V2       bittorrent.InfoHashV2 `json:"v2,omitzero"`
	Name     string                `json:"name"`
	OldState State                 `json:"old_state,omitzero"` // 0 for ActionAdd
	NewState State                 `json:"new_state"`
	Reason   string                `json:"reason,omitempty"` // the revocation reason, for ActionRevoke
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
	if e.HasV1() && e.HasV2() && e.V1 == e.V2.Truncate() {
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
