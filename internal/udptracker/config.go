package udptracker

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	"warden/internal/confkey"
)

// Config tunes the UDP frontend. The announce policy (intervals, numwant,
// scrape limits) belongs to tracker.Config; this holds only what is about
// sockets and connection IDs.
type Config struct {
	// Listen is the address warden serve passes to Listen. An address with an
	// empty or wildcard host (":6969", "[::]:6969", "0.0.0.0:6969") gives a
	// dual-stack socket that serves IPv4 and IPv6 where the OS allows it;
	// "127.0.0.1:6969" or "[::1]:6969" serve one family. Validate rejects
	// an empty Listen: whether "" means "no UDP tracker" is the caller's
	// decision, made before Validate.
	Listen string `toml:"listen"`
	// Workers is the number of reader goroutines, each with its own socket
	// bound to the same address with SO_REUSEPORT, so the kernel spreads
	// packets between them. Values above 1 need SO_REUSEPORT (Linux, BSDs,
	// macOS).
	Workers int `toml:"workers"`
	// BatchSize is the number of datagrams read or written per system call
	// (recvmmsg/sendmmsg on Linux). Each worker keeps BatchSize receive and
	// reply buffers.
	BatchSize int `toml:"batch_size"`
	// CookieRotation is how often the connection ID key is replaced. The
	// previous key is kept for one more period, so an ID issued just before
	// a rotation keeps working; at least 2m (the longest an ID lives) is
	// required so that no ID can see two rotations.
	CookieRotation time.Duration `toml:"cookie_rotation"`
	// CookieSecret, if set, derives the connection ID key of each rotation
	// period from this secret instead of drawing it at random, so that
	// trackers sharing the secret (and CookieRotation, and a clock within
	// a few seconds) accept each other's connection IDs: a client may
	// connect to one and announce to another behind the same address.
	// Written in hex or base64, at least 32 bytes. It never appears in a
	// log; anyone who has it can forge connection IDs.
	CookieSecret CookieSecret `toml:"cookie_secret"`
	// SocketBufferBytes sets the receive and send buffers of every socket;
	// 0 keeps the OS default (about 208 KiB on Linux). Past
	// net.core.rmem_max it takes CAP_NET_ADMIN; without it the kernel caps
	// the size. A deeper queue absorbs bursts of legitimate traffic, but
	// under a flood the worker cannot keep up with it drains no faster and
	// legitimate packets wait longer in it: measured with warden load
	// --scenario flood at ~0.9M flood packets/s, 4 MiB gave 96.9% of
	// legitimate announces answered with p99 16 ms, the default 99.3% with
	// p99 2.5 ms.
	SocketBufferBytes int `toml:"socket_buffer_bytes"`
	// KernelBans has the guard keep its bans and blocklist in a socket
	// filter (classic BPF, Linux only: see package sockfilter), so the
	// kernel drops a banned source's datagrams before they are queued on
	// the socket.
	KernelBans bool `toml:"kernel_bans"`
	// RefusalReply is how an announce for a torrent the tracker refuses
	// is answered. A BEP 15 error carries no interval, so clients take it
	// for a failure and retry on their own backoff (libtorrent: after 30
	// s, 55 s, 2 min, … up to an hour); an announce reply carries one,
	// which they honour, but no reason. See docs/clients.md.
	//
	//   - ReplyCalm (the default): the first refusal of a client (source
	//     address and announced port) for a torrent is an error carrying
	//     the reason; its refusals for that torrent within
	//     tracker.refusal_interval after that get an announce reply with
	//     no peers, zero counts and that interval as the interval.
	//   - ReplyError: every refusal is an error carrying the reason.
	RefusalReply RefusalReply `toml:"refusal_reply"`
	// RefusalTableBytes is the memory in which ReplyCalm remembers the
	// clients it told, allocated at Listen and never grown: 8 bytes a
	// client and torrent (4 MiB: half a million). When it is full the
	// oldest are forgotten, and told again at their next refusal.
	RefusalTableBytes int `toml:"refusal_table_bytes"`
}

// RefusalReply is how refused announces are answered; see
// Config.RefusalReply.
type RefusalReply uint8

const (
	// ReplyCalm: an error the first time, then an empty announce reply
	// with the refusal interval.
	ReplyCalm RefusalReply = iota
	// ReplyError: an error every time.
	ReplyError
)

// refusalReplies names the RefusalReply values, as the config file has them.
var refusalReplies = [...]string{ReplyCalm: "calm", ReplyError: "error"}

func (r RefusalReply) String() string {
	if int(r) < len(refusalReplies) {
		return refusalReplies[r]
	}
	return "RefusalReply(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText writes the name.
func (r RefusalReply) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads "calm" or "error".
func (r *RefusalReply) UnmarshalText(b []byte) error {
	for i, name := range refusalReplies {
		if string(b) == name {
			*r = RefusalReply(i)
			return nil
		}
	}
	return fmt.Errorf("refusal_reply: %q is not calm or error", b)
}

// DefaultConfig returns the settings warden serve uses when the config file
// has none: port 6969 on every address, one worker per GOMAXPROCS.
func DefaultConfig() Config {
	return Config{
		Listen:         ":6969",
		Workers:        runtime.GOMAXPROCS(0),
		BatchSize:      64,
		CookieRotation: time.Hour,
		KernelBans:     true,

		RefusalReply:      ReplyCalm,
		RefusalTableBytes: 4 << 20,
	}
}

// Limits enforced by Validate.
const (
	maxWorkers     = 1024
	maxBatchSize   = 1024 // UIO_MAXIOV, the most recvmmsg accepts
	minRotation    = 2 * cookieWindow
	maxSocketBytes = 1 << 30
	minTableBytes  = 64 << 10
	maxTableBytes  = 1 << 30
)

// Validate returns a *confkey.Error naming the first field that cannot
// work by its key in the [udp] table. It never adjusts a value.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return confkey.Errorf("listen", "must not be empty")
	case c.Workers < 1 || c.Workers > maxWorkers:
		return confkey.Errorf("workers", "must be 1-%d, got %d", maxWorkers, c.Workers)
	case c.BatchSize < 1 || c.BatchSize > maxBatchSize:
		return confkey.Errorf("batch_size", "must be 1-%d, got %d", maxBatchSize, c.BatchSize)
	case c.CookieRotation < minRotation:
		return confkey.Errorf("cookie_rotation", "must be at least %v, got %v", minRotation, c.CookieRotation)
	case len(c.CookieSecret) > 0 && len(c.CookieSecret) < minSecretBytes:
		return confkey.Errorf("cookie_secret", "must be at least %d bytes, got %d", minSecretBytes, len(c.CookieSecret))
	case c.SocketBufferBytes < 0 || c.SocketBufferBytes > maxSocketBytes:
		return confkey.Errorf("socket_buffer_bytes", "must be 0-%d, got %d", maxSocketBytes, c.SocketBufferBytes)
	case int(c.RefusalReply) >= len(refusalReplies):
		return confkey.Errorf("refusal_reply", "%v is not calm or error", c.RefusalReply)
	case c.RefusalTableBytes < minTableBytes || c.RefusalTableBytes > maxTableBytes:
		return confkey.Errorf("refusal_table_bytes", "must be %d-%d, got %d", minTableBytes, maxTableBytes, c.RefusalTableBytes)
	}
	return nil
}
