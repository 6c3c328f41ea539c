// Package memswarm is the in-memory swarm store: torrents sharded by info
// hash, each with compact per-family peer lists kept partitioned into
// seeders then leechers, so counting is free and picking leechers for a
// seeder is a slice window.
package memswarm

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/cpu"

	"warden/internal/bittorrent"
	"warden/internal/swarm"
)

const shardCount = 1024 // power of two

// Store is a sharded in-memory swarm.Store. The zero value is not usable;
// call New.
type Store struct {
	cfg      swarm.Config
	throttle uint32 // cfg.ThrottleInterval in seconds
	now      func() time.Time
	epoch    time.Time
	seed     maphash.Seed // picks the shard, so hashes cannot be chosen to crowd one
	shards   []shard
}

type shard struct {
	mu       sync.Mutex // guards the fields below
	torrents map[bittorrent.InfoHash]*torrent
	rng      uint64
	seeders  int
	leechers int
	_        cpu.CacheLinePad
}

// torrent is one swarm: 84 bytes (a 96-byte allocation), plus its peers'
// arrays.
type torrent struct {
	v4         peerList[addr4]
	v6         *peerList[addr6] // nil until the first IPv6 peer: most swarms have none
	downloaded uint32
	lastSeen   uint32 // seconds since epoch of the store
	ticket     uint32 // the admission ticket this torrent was last admitted under
}

func (t *torrent) seeders() int {
	n := int(t.v4.seeders)
	if t.v6 != nil {
		n += int(t.v6.seeders)
	}
	return n
}

func (t *torrent) leechers() int {
	n := t.v4.leechers()
	if t.v6 != nil {
		n += t.v6.leechers()
	}
	return n
}

func (t *torrent) empty() bool { return t.v4.len() == 0 && (t.v6 == nil || t.v6.len() == 0) }

var _ swarm.Store = (*Store)(nil)

// New returns an empty store. It starts nothing: call Run to expire peers.
func New(cfg swarm.Config) *Store {
	return newWithClock(cfg, time.Now)
}

func newWithClock(cfg swarm.Config, now func() time.Time) *Store {
	s := &Store{cfg: cfg, throttle: uint32(cfg.ThrottleInterval / time.Second), now: now, epoch: now(), seed: maphash.MakeSeed(), shards: make([]shard, shardCount)}
	for i := range s.shards {
		s.shards[i].torrents = make(map[bittorrent.InfoHash]*torrent)
		s.shards[i].rng = uint64(i)*0x9E3779B97F4A7C15 + uint64(s.epoch.UnixNano())
	}
	return s
}

// Run collects expired peers every SweepInterval until ctx is done.
func (s *Store) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.Sweep()
		}
	}
}

// clock returns the current time in seconds since the store's epoch.
func (s *Store) clock() uint32 {
	return uint32(s.now().Sub(s.epoch) / time.Second)
}

// shardFor hashes the info hash with the store's secret seed: real info
// hashes are uniform anyway, but made-up ones (open mode, or refused
// floods, which take the shard's lock to learn they are not admitted)
// could otherwise be chosen to land in one shard.
func (s *Store) shardFor(ih bittorrent.InfoHash) *shard {
	return &s.shards[maphash.Comparable(s.seed, ih)&(shardCount-1)]
}

// Announce implements swarm.Store. It does no I/O and ignores ctx. Each
// torrent remembers the ticket it was last admitted under, so a caller's
// steady announces are answered without asking it again.
func (s *Store) Announce(_ context.Context, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse, ticket uint32, admitted bool) error {
	now := s.clock()
	sh := s.shardFor(req.InfoHash)
	ip := req.Addr.Addr().Unmap()
	seeder := req.Seeder()

	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.torrents[req.InfoHash]
	if !admitted && (t == nil || t.ticket != ticket) {
		return swarm.ErrNotAdmitted
	}
	resp.Peers.Reset(!ip.Is4())
	if t == nil {
		if req.Event == bittorrent.EventStopped {
			resp.Complete, resp.Incomplete = 0, 0
			return nil
		}
		t = &torrent{}
		sh.torrents[req.InfoHash] = t
	}
	t.ticket = ticket
	t.lastSeen = now
	var pos, ds, dl int
	var completed, tooSoon bool
	if ip.Is4() {
		pos, ds, dl, completed, tooSoon = t.v4.update(key4(ip, req.Addr.Port()), seeder, req.Event, now, s.throttle)
		if !tooSoon {
			resp.Peers.Bytes = t.v4.pick(pos, seeder, numWant, nextRand(&sh.rng), resp.Peers.Bytes)
		}
	} else {
		if t.v6 == nil {
			t.v6 = &peerList[addr6]{}
		}
		pos, ds, dl, completed, tooSoon = t.v6.update(key6(ip, req.Addr.Port()), seeder, req.Event, now, s.throttle)
		if !tooSoon {
			resp.Peers.Bytes = t.v6.pick(pos, seeder, numWant, nextRand(&sh.rng), resp.Peers.Bytes)
		}
	}
	sh.seeders += ds
	sh.leechers += dl
	if completed {
		t.downloaded++
	}
	resp.Complete = uint32(t.seeders())
	resp.Incomplete = uint32(t.leechers())
	return nil
}

// Scrape implements swarm.Store. It locks one shard at a time, does no
// I/O and ignores ctx.
func (s *Store) Scrape(_ context.Context, sc []bittorrent.Scrape) error {
	for i := range sc {
		ih := sc[i].InfoHash
		sh := s.shardFor(ih)
		sh.mu.Lock()
		sc[i] = scrapeLocked(ih, sh.torrents[ih])
		sh.mu.Unlock()
	}
	return nil
}

func scrapeLocked(ih bittorrent.InfoHash, t *torrent) bittorrent.Scrape {
	sc := bittorrent.Scrape{InfoHash: ih}
	if t != nil {
		sc.Complete = uint32(t.seeders())
		sc.Incomplete = uint32(t.leechers())
		sc.Downloaded = t.downloaded
	}
	return sc
}

// ScrapeAll implements swarm.Store. It holds one shard's lock at a time,
// calls fn outside of it, and looks at ctx between shards.
func (s *Store) ScrapeAll(ctx context.Context, fn func(bittorrent.Scrape) bool) error {
	var batch []bittorrent.Scrape
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &s.shards[i]
		batch = batch[:0]
		sh.mu.Lock()
		for ih, t := range sh.torrents {
			batch = append(batch, scrapeLocked(ih, t))
		}
		sh.mu.Unlock()
		for _, sc := range batch {
			if !fn(sc) {
				return nil
			}
		}
	}
	return nil
}

// Stats implements swarm.Store.
func (s *Store) Stats() swarm.Stats {
	var st swarm.Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Torrents += len(sh.torrents)
		st.Seeders += sh.seeders
		st.Leechers += sh.leechers
		sh.mu.Unlock()
	}
	return st
}

// Sweep removes peers not seen for PeerTTL and torrents left with no peers
// and no activity for PeerTTL. It locks one shard at a time, so announces
// elsewhere go on.
func (s *Store) Sweep() {
	now := s.clock()
	ttl := uint32(s.cfg.PeerTTL / time.Second)
	if now < ttl {
		return
	}
	cutoff := now - ttl
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for ih, t := range sh.torrents {
			ds, dl := t.v4.expire(now, ttl)
			sh.seeders -= ds
			sh.leechers -= dl
			if t.v6 != nil {
				ds, dl = t.v6.expire(now, ttl)
				sh.seeders -= ds
				sh.leechers -= dl
				if t.v6.len() == 0 {
					t.v6 = nil
				}
			}
			if t.empty() && t.lastSeen < cutoff {
				delete(sh.torrents, ih)
			}
		}
		sh.mu.Unlock()
	}
}

// nextRand is a splitmix64 step: cheap, good enough to spread peer
// selection, and needs no lock beyond the shard's.
func nextRand(state *uint64) uint64 {
	*state += 0x9E3779B97F4A7C15
	z := *state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// randN returns a value in [0, n) from r.
func randN(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

// addr4 and addr6 are a peer's IP and port in the compact wire form of BEP
// 23 and BEP 7: comparable, small, and copyable straight into a reply.
type (
	addr4 [6]byte
	addr6 [18]byte
)

func key4(ip netip.Addr, port uint16) addr4 {
	var k addr4
	b := ip.As4()
	copy(k[:4], b[:])
	binary.BigEndian.PutUint16(k[4:], port)
	return k
}

func key6(ip netip.Addr, port uint16) addr6 {
	var k addr6
	b := ip.As16()
	copy(k[:16], b[:])
	binary.BigEndian.PutUint16(k[16:], port)
	return k
}
