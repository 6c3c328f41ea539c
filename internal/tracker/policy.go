package tracker

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"warden/internal/bittorrent"
)

// Mode decides which torrents are tracked.
type Mode uint8

const (
	// ModeAllowlist tracks only registered, active torrents.
	ModeAllowlist Mode = iota
	// ModeDenylist tracks every torrent but revoked ones.
	ModeDenylist
	// ModeOpen tracks any info hash.
	ModeOpen
)

// Modes names the modes in the order the documentation lists them.
var Modes = []string{"allowlist", "denylist", "open"}

func (m Mode) String() string {
	if int(m) < len(Modes) {
		return Modes[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MarshalText writes the mode's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a mode's name.
func (m *Mode) UnmarshalText(b []byte) error {
	for i, name := range Modes {
		if string(b) == name {
			*m = Mode(i)
			return nil
		}
	}
	return fmt.Errorf("mode: %q is not one of allowlist, denylist, open", b)
}

// Registry is what the tracker needs from the torrent registry.
type Registry interface {
	// Status reports whether ih is registered and, if so, whether it is
	// revoked and why. It must not block or allocate: it is on the path of
	// every announce.
	Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string)
	// Generation changes whenever a Status answer may have changed. The
	// swarm store remembers the generation under which it last admitted
	// each torrent, so announces for a torrent in steady use skip Status.
	Generation() uint64
}

// RefusalKind says why a torrent was refused.
type RefusalKind uint8

const (
	// RefusedUnregistered: the torrent is not registered (allowlist mode).
	RefusedUnregistered RefusalKind = iota
	// RefusedRevoked: the torrent was revoked.
	RefusedRevoked
)

func (k RefusalKind) String() string {
	if k == RefusedRevoked {
		return "revoked"
	}
	return "unregistered"
}

// RefusalSink is told of every refused announce and scrape hash, for the
// operator's record of who knocks. It is called on the request path, so
// it must not block and should not allocate.
type RefusalSink interface {
	Refused(ih bittorrent.InfoHash, src netip.Addr, why RefusalKind, now time.Time)
}

// refusals keeps the answers the tracker sends for torrents it does not
// track, built once (and once per revocation reason), so refusing
// allocates nothing.
type refusals struct {
	notRegistered *bittorrent.Refusal // the preallocated "not registered" answer

	mu          sync.Mutex                                     // serializes writers of revokedMsgs
	revokedMsgs atomic.Pointer[map[string]*bittorrent.Refusal] // reason -> answer, copy on write
	contact     string
	interval    time.Duration
}

const maxRevokedMsgs = 1024

func newRefusals(contact string, interval time.Duration) *refusals {
	r := &refusals{contact: contact, interval: interval}
	r.notRegistered = &bittorrent.Refusal{Reason: r.withContact("torrent not registered on this tracker"), Interval: interval}
	empty := map[string]*bittorrent.Refusal{}
	r.revokedMsgs.Store(&empty)
	return r
}

// contactProblem says why s cannot be tracker.abuse_contact, or returns
// "". The contact goes verbatim into every refusal: the text of a BEP 15
// error (raw bytes to the end of the datagram, which clients print, and
// libtorrent reads up to a NUL) and a bencoded failure reason, which
// clients decode as UTF-8 and show in one line. So it must be valid UTF-8
// of printable characters only: no control characters (NUL, line breaks,
// tabs, escapes, C1), no invisible format characters that reorder or hide
// text (bidi overrides, zero-width spaces, byte order marks), no spaces
// but U+0020, and none at either end.
func contactProblem(s string) string {
	if !utf8.ValidString(s) {
		i := 0
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Sprintf("is not valid UTF-8 (byte %d is %#02x)", i, s[i])
	}
	for i, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("has %U at byte %d: only printable characters may go into a refusal's text", r, i)
		}
	}
	if strings.TrimSpace(s) != s {
		return "starts or ends with a space"
	}
	return ""
}

// WithContact returns msg with the operator's abuse contact appended, as
// every refusal carries it: for the answers a frontend makes itself, such
// as "over your rate".
func (t *Tracker) WithContact(msg string) string { return t.refusals.withContact(msg) }

func (r *refusals) withContact(msg string) string {
	if r.contact == "" {
		return msg
	}
	return msg + "; contact " + r.contact
}

// revokedAnswer returns the refusal for a torrent revoked with reason,
// allocating only the first time a reason is seen.
func (r *refusals) revokedAnswer(reason string) *bittorrent.Refusal {
	if a, ok := (*r.revokedMsgs.Load())[reason]; ok {
		return a
	}
	msg := "revoked"
	if reason != "" {
		msg += ": " + reason
	}
	a := &bittorrent.Refusal{Reason: r.withContact(msg), Interval: r.interval}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.revokedMsgs.Load()
	if len(old) >= maxRevokedMsgs {
		return a
	}
	m := make(map[string]*bittorrent.Refusal, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[reason] = a
	r.revokedMsgs.Store(&m)
	return a
}
