package udptracker

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dchest/siphash"
)

// cookieWindow is the time slot a connection ID is tied to. An ID is
// accepted in the window it was issued in and the next one, so it lives
// between one and two windows: BEP 15 lets a client reuse an ID for one
// minute and has the tracker accept it for two.
const cookieWindow = time.Minute

// A cookieJar issues and checks connection IDs without storing anything:
// an ID is a SipHash-2-4 MAC, under a secret key, of the client's IP and
// the current time window. Checking one costs a single MAC, so a flood of
// forged IDs costs no memory and little CPU.
//
// Layout of the 64-bit ID: bits 63..2 are the top 62 bits of the MAC, bit
// 1 is the parity of the key generation and bit 0 the parity of the
// window it was issued in. The parities say which key and window to check
// against, so a check never tries more than one MAC. A forger has a 2⁻⁶²
// chance per guess.
//
// The key is replaced every rotation period (lazily, by the first packet
// of a new period); the previous key is kept for one period so IDs issued
// just before a rotation still work. A new key is fresh random bits, or,
// with a CookieSecret, derived from the secret and the period's number, so
// that every tracker sharing the secret holds the same keys. Keys are
// never logged: sipKey redacts itself.
//
// A cookieJar is safe for concurrent use; issue and valid do not allocate
// except on the first call of a rotation period.
type cookieJar struct {
	now      func() time.Time
	rotation time.Duration
	key      func(gen int64) sipKey // the key of rotation period gen

	keys atomic.Pointer[keySet]
	mu   sync.Mutex // serializes rotations; readers use keys without it
}

// keySet is immutable once published.
type keySet struct {
	gen  int64  // rotation period number of cur
	cur  sipKey // issues IDs; checks IDs of generation gen
	prev sipKey // checks IDs of generation gen-1
}

type sipKey struct{ k0, k1 uint64 }

// LogValue keeps the key out of logs even if a keySet is logged by
// mistake.
func (sipKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// newCookieJar returns a jar whose clock is now and whose keys are derived
// from secret or, if it is empty, come from random (crypto/rand when nil).
func newCookieJar(rotation time.Duration, now func() time.Time, secret CookieSecret, random func([]byte)) *cookieJar {
	if random == nil {
		random = func(b []byte) { _, _ = rand.Read(b) } // never fails since Go 1.24
	}
	j := &cookieJar{now: now, rotation: rotation}
	j.key = func(int64) sipKey {
		var b [16]byte
		random(b[:])
		return sipKey{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
	}
	if len(secret) > 0 {
		secret = bytes.Clone(secret)
		j.key = func(gen int64) sipKey { return secret.key(rotation, gen) }
	}
	gen := j.generation(now())
	j.keys.Store(&keySet{gen: gen, cur: j.key(gen), prev: j.key(gen - 1)})
	return j
}

func (j *cookieJar) generation(t time.Time) int64 { return t.UnixNano() / int64(j.rotation) }

func window(t time.Time) int64 { return t.UnixNano() / int64(cookieWindow) }

// keysAt returns the key set for time t, rotating first if t is in a later
// period than the current keys. A clock that steps back keeps the newest
// keys.
func (j *cookieJar) keysAt(t time.Time) *keySet {
	gen := j.generation(t)
	if ks := j.keys.Load(); gen <= ks.gen {
		return ks
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	ks := j.keys.Load()
	if gen <= ks.gen {
		return ks
	}
	next := &keySet{gen: gen, cur: j.key(gen)}
	if gen == ks.gen+1 {
		next.prev = ks.cur
	} else {
		next.prev = j.key(gen - 1) // random: the old keys are two periods stale, accept nothing they issued
	}
	j.keys.Store(next)
	return next
}

// mac is SipHash-2-4 of the IP (as 16 bytes, IPv4 mapped, zone dropped)
// and the window number, under k.
func (k sipKey) mac(ip netip.Addr, w int64) uint64 {
	var msg [24]byte
	a := ip.Unmap().As16() // one ID per address, however it arrived
	copy(msg[:16], a[:])
	binary.LittleEndian.PutUint64(msg[16:], uint64(w))
	return siphash.Hash(k.k0, k.k1, msg[:])
}

// issue returns a connection ID for ip, valid from t for one to two
// cookie windows.
func (j *cookieJar) issue(ip netip.Addr, t time.Time) uint64 {
	ks := j.keysAt(t)
	w := window(t)
	return ks.cur.mac(ip, w)&^3 | uint64(ks.gen&1)<<1 | uint64(w&1)
}

// valid reports whether id was issued to ip in the current or previous
// window, under the current or previous key, at time t.
func (j *cookieJar) valid(ip netip.Addr, id uint64, t time.Time) bool {
	ks := j.keysAt(t)
	w := window(t)
	if uint64(w&1) != id&1 {
		w-- // issued in the previous window
	}
	k := ks.cur
	if uint64(ks.gen&1) != id>>1&1 {
		k = ks.prev
	}
	return k.mac(ip, w)&^3 == id&^3
}

// CookieSecret is a secret that connection ID keys are derived from (see
// Config.CookieSecret). It is read from hex or base64 text and is shown as
// "[redacted]" by slog, fmt and encoders (JSON, TOML), so that printing a
// Config never leaks it; an empty secret shows as "".
type CookieSecret []byte

// minSecretBytes is the shortest CookieSecret: 256 bits, the HMAC-SHA256
// key size.
const minSecretBytes = 32

// UnmarshalText reads the secret: text of hex digits only is hex, anything
// else base64 (standard or URL alphabet, padded or not). Empty text is no
// secret. Errors never quote the text.
func (s *CookieSecret) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*s = nil
		return nil
	}
	b, ok := decodeSecret(string(text))
	if !ok {
		return errors.New("must be hex or base64")
	}
	if len(b) < minSecretBytes {
		return fmt.Errorf("must be at least %d bytes, got %d", minSecretBytes, len(b))
	}
	*s = b
	return nil
}

func decodeSecret(t string) ([]byte, bool) {
	if strings.Trim(t, "0123456789abcdefABCDEF") == "" {
		b, err := hex.DecodeString(t)
		return b, err == nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(t); err == nil {
			return b, true
		}
	}
	return nil, false
}

const redacted = "[redacted]"

func (s CookieSecret) String() string {
	if len(s) == 0 {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the bytes.
func (s CookieSecret) GoString() string { return s.String() }

// LogValue redacts the secret in slog output.
func (s CookieSecret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts the secret in JSON and TOML; "[redacted]" does not
// read back, so a marshalled secret cannot pass for a real one.
func (s CookieSecret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// cookieKeyLabel separates these keys from anything else derived from the
// same secret.
const cookieKeyLabel = "warden udp connection id key\x00"

// key derives the key of rotation period gen: the first 16 bytes of
// HMAC-SHA256(secret, label || rotation || gen). The rotation is part of
// the input so that trackers configured with different periods never hold
// the same key for different times.
func (s CookieSecret) key(rotation time.Duration, gen int64) sipKey {
	m := hmac.New(sha256.New, s)
	var msg [len(cookieKeyLabel) + 16]byte
	copy(msg[:], cookieKeyLabel)
	binary.BigEndian.PutUint64(msg[len(cookieKeyLabel):], uint64(rotation))
	binary.BigEndian.PutUint64(msg[len(cookieKeyLabel)+8:], uint64(gen))
	m.Write(msg[:])
	sum := m.Sum(nil)
	return sipKey{binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])}
}
