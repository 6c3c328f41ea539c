package udptracker

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net/netip"
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
// of a new period) with fresh random bits; the previous key is kept for
// one period so IDs issued just before a rotation still work. Keys are
// never logged: sipKey redacts itself.
//
// A cookieJar is safe for concurrent use; issue and valid do not allocate
// except on the first call of a rotation period.
type cookieJar struct {
	now      func() time.Time
	rotation time.Duration
	random   func([]byte) // fills its argument with secret random bytes

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

// newCookieJar returns a jar whose keys come from random (crypto/rand
// when nil) and whose clock is now.
func newCookieJar(rotation time.Duration, now func() time.Time, random func([]byte)) *cookieJar {
	if random == nil {
		random = func(b []byte) { _, _ = rand.Read(b) } // never fails since Go 1.24
	}
	j := &cookieJar{now: now, rotation: rotation, random: random}
	gen := j.generation(now())
	j.keys.Store(&keySet{gen: gen, cur: j.newKey(), prev: j.newKey()})
	return j
}

func (j *cookieJar) newKey() sipKey {
	var b [16]byte
	j.random(b[:])
	return sipKey{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
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
	next := &keySet{gen: gen, cur: j.newKey()}
	if gen == ks.gen+1 {
		next.prev = ks.cur
	} else {
		next.prev = j.newKey() // the old keys are two periods stale: accept nothing they issued
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
