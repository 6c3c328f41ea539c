package bittorrent

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// InfoHash identifies a torrent on the wire: the SHA-1 of a v1 info
// dictionary, or a v2 hash truncated to 20 bytes (BEP 52; see
// [InfoHashV2.Truncate]). It is what announces and scrapes carry, and what
// the registry and the swarm store are keyed by.
type InfoHash [20]byte

// String returns the hash as 40 lowercase hex digits.
func (ih InfoHash) String() string { return hex.EncodeToString(ih[:]) }

// IsZero reports whether ih is all zeros, which warden reads as "no hash".
func (ih InfoHash) IsZero() bool { return ih == InfoHash{} }

// MarshalText lets an InfoHash appear as hex in JSON and slog output.
func (ih InfoHash) MarshalText() ([]byte, error) { return []byte(ih.String()), nil }

// UnmarshalText accepts what [ParseInfoHash] accepts.
func (ih *InfoHash) UnmarshalText(b []byte) error {
	h, err := ParseInfoHash(string(b))
	if err != nil {
		return err
	}
	*ih = h
	return nil
}

// ErrBadInfoHash is returned for a hex info hash of the wrong length or
// alphabet.
var ErrBadInfoHash = errors.New("info hash must be 40 hex digits (v1) or 64 (v2)")

// ParseInfoHash parses the hash a client would announce: 40 hex digits (a
// v1 hash), or a full v2 hash of 64, which it truncates as clients do, so an
// operator may paste either. Case is ignored. A caller that must tell the
// two apart checks the length first, or uses [ParseInfoHashV2].
func ParseInfoHash(s string) (InfoHash, error) {
	switch len(s) {
	case 40:
		var ih InfoHash
		if _, err := hex.Decode(ih[:], []byte(s)); err == nil {
			return ih, nil
		}
	case 64:
		if h, err := ParseInfoHashV2(s); err == nil {
			return h.Truncate(), nil
		}
	}
	return InfoHash{}, fmt.Errorf("%q: %w", clip(s, 80), ErrBadInfoHash)
}

// InfoHashV2 is a full BitTorrent v2 info hash: the SHA-256 of a v2 info
// dictionary (BEP 52). Trackers never see it whole; clients announce its
// first 20 bytes (see [InfoHashV2.Truncate]), so it is kept beside, not
// instead of, the InfoHash. The zero value means "no v2 hash".
type InfoHashV2 [32]byte

// Truncate returns the first 20 bytes of h: what a client sends to a
// tracker for a v2 torrent, and the only place warden truncates.
func (h InfoHashV2) Truncate() InfoHash { return InfoHash(h[:20]) }

// IsZero reports whether h is all zeros, which warden reads as "no v2
// hash".
func (h InfoHashV2) IsZero() bool { return h == InfoHashV2{} }

// String returns h as 64 lowercase hex digits.
func (h InfoHashV2) String() string { return hex.EncodeToString(h[:]) }

// MarshalText returns h as 64 lowercase hex digits.
func (h InfoHashV2) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText accepts exactly 64 hex digits, like [ParseInfoHashV2].
func (h *InfoHashV2) UnmarshalText(b []byte) error {
	v, err := ParseInfoHashV2(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ErrBadInfoHashV2 is returned by [ParseInfoHashV2] for input that is not
// 64 hex digits.
var ErrBadInfoHashV2 = errors.New("v2 info hash must be 64 hex digits")

// ParseInfoHashV2 parses a full v2 info hash written as 64 hex digits, in
// either case. It never accepts a truncated hash: 40 digits cannot be
// widened back.
func ParseInfoHashV2(s string) (InfoHashV2, error) {
	var h InfoHashV2
	if len(s) != 64 {
		return h, fmt.Errorf("%q: %w", clip(s, 80), ErrBadInfoHashV2)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return InfoHashV2{}, fmt.Errorf("%q: %w", clip(s, 80), ErrBadInfoHashV2)
	}
	return h, nil
}

// clip shortens s for an error message, so a huge input is not echoed.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
