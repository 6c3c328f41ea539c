// Package memswarm is the in-memory swarm store: torrents sharded by info
// hash, each with compact per-family peer lists kept partitioned into
// seeders then leechers, so counting is free and picking leechers for a
// seeder is a slice window. Everything but the shards' maps lives in an
// arena outside the Go heap (arena.go), so a stored IPv4 peer costs about
// 8 bytes of resident memory and the collector neither scans the swarms
// nor keeps their garbage. Its bounds (swarm.Config) cost no memory per
// source: a torrent counts its own peers, one counter counts torrents,
// and a fixed sketch counts the torrents each network created.
package memswarm

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
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
	seed     maphash.Seed // picks the shard and keys the prefix sketch, so neither can be aimed at
	torrents atomic.Int64 // torrents held in all shards, never more than cfg.MaxTorrents
	prefixes *prefixCounts
	lists    lists // the peer lists' arena and bucket hash
	shards   []shard
}

type shard struct {
	mu       sync.Mutex // guards the fields below
	torrents table
	rng      uint64
	seeders  int
	leechers int
	bounds   boundCounts
	_        cpu.CacheLinePad
}

// boundCounts are what a shard's bounds turned away (see swarm.Stats).
type boundCounts struct {
	full, prefix, swarmFull, addressFull uint64
}

// torrent is one swarm: a 64-byte record in the arena, plus its peers'
// chunks. The shard's map, in the heap, points to it.
type torrent struct {
	v4         peerList[addr4]
	v6         *peerList[addr6] // nil until the first IPv6 peer: most swarms have none
	downloaded uint32
	lastSeen   uint32 // seconds since epoch of the store
	ticket     uint32 // the admission ticket this torrent was last admitted under
	creator    uint32 // the prefix sketch key of the network that created it, or 0 (see prefixCounts)
}

func (t *torrent) len() int {
	n := t.v4.len()
	if t.v6 != nil {
		n += t.v6.len()
	}
	return n
}

// release gives back the torrent and its chunks; it must not be used
// again.
func (t *torrent) release(ls *lists) {
	t.v4.release(ls)
	t.dropV6(ls)
	freeIn(ls.arena, t)
}

// dropV6 gives back the torrent's IPv6 list.
func (t *torrent) dropV6(ls *lists) {
	if t.v6 != nil {
		t.v6.release(ls)
		freeIn(ls.arena, t.v6)
		t.v6 = nil
	}
}

func (t *torrent) seeders() int {
	n := t.v4.seeders()
	if t.v6 != nil {
		n += t.v6.seeders()
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

// New returns an empty store with cfg, which must have passed Validate. It
// starts nothing: call Run to expire peers.
func New(cfg swarm.Config) *Store {
	return newWithClock(cfg, time.Now)
}

func newWithClock(cfg swarm.Config, now func() time.Time) *Store {
	s := &Store{
		cfg:      cfg,
		throttle: uint32(cfg.ThrottleInterval / time.Second),
		now:      now,
		epoch:    now(),
		seed:     maphash.MakeSeed(),
		prefixes: new(prefixCounts),
		lists: lists{
			arena:  newArena(),
			mult:   rand.Uint64() | 1,
			byHost: cfg.MaxPeersPerAddress <= byHostMax,
		},
		shards: make([]shard, shardCount),
	}
	for i := range s.shards {
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

// locate hashes the info hash with the store's secret seed and returns
// the hash and the shard its low bits choose: real info hashes are uniform
// anyway, but made-up ones (open mode, or refused floods, which take the
// shard's lock to learn they are not admitted) could otherwise be chosen
// to land in one shard, or on one slot of its table.
func (s *Store) locate(ih bittorrent.InfoHash) (uint64, *shard) {
	h := maphash.Comparable(s.seed, ih)
	return h, &s.shards[h&(shardCount-1)]
}

func (s *Store) shardFor(ih bittorrent.InfoHash) *shard {
	_, sh := s.locate(ih)
	return sh
}

// Announce implements swarm.Store. It does no I/O and ignores ctx. Each
// torrent remembers the ticket it was last admitted under, so a caller's
// steady announces are answered without asking it again.
func (s *Store) Announce(_ context.Context, req *bittorrent.AnnounceRequest, numWant int, resp *bittorrent.AnnounceResponse, ticket uint32, adm swarm.Admission) error {
	now := s.clock()
	h, sh := s.locate(req.InfoHash)
	ip := req.Addr.Addr().Unmap()

	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.torrents.get(h, req.InfoHash)
	if adm == swarm.Undecided && (t == nil || t.ticket != ticket) {
		return swarm.ErrNotAdmitted
	}
	if t == nil {
		if req.Event == bittorrent.EventStopped {
			resp.Peers.Reset(!ip.Is4())
			resp.Complete, resp.Incomplete = 0, 0
			return nil
		}
		var err error
		if t, err = s.createLocked(sh, h, req.InfoHash, ip, adm); err != nil {
			return err
		}
	}
	t.ticket = ticket
	t.lastSeen = now
	resp.Peers.Reset(!ip.Is4())
	if ip.Is4() {
		announceLocked(s, sh, t, &t.v4, key4(ip, req.Addr.Port()), req, numWant, now, resp)
	} else {
		if t.v6 == nil {
			t.v6 = newIn[peerList[addr6]](s.lists.arena)
		}
		announceLocked(s, sh, t, t.v6, key6(ip, req.Addr.Port()), req, numWant, now, resp)
	}
	resp.Complete = uint32(t.seeders())
	resp.Incomplete = uint32(t.leechers())
	return nil
}

// createLocked adds an empty torrent for ih if the bounds allow: one more
// torrent in all, and, for a torrent anyone may create, one more for the
// requester's network. sh is ih's shard, h its hash, and the caller
// holds its lock.
func (s *Store) createLocked(sh *shard, h uint64, ih bittorrent.InfoHash, ip netip.Addr, adm swarm.Admission) (*torrent, error) {
	var creator uint32
	if adm == swarm.Unlisted {
		creator = s.prefixKey(ip)
		if !s.prefixes.add(creator, s.cfg.MaxTorrentsPerPrefix) {
			sh.bounds.prefix++
			return nil, swarm.ErrPrefixFull
		}
	}
	if s.torrents.Add(1) > int64(s.cfg.MaxTorrents) {
		s.torrents.Add(-1)
		if creator != 0 {
			s.prefixes.remove(creator)
		}
		sh.bounds.full++
		return nil, swarm.ErrFull
	}
	t := newIn[torrent](s.lists.arena)
	t.creator = creator
	sh.torrents.put(s.lists.arena, s.seed, h, ih, t)
	return t, nil
}

// forget gives back what a torrent the table no longer holds was charged,
// and its memory.
func (s *Store) forget(t *torrent) {
	s.torrents.Add(-1)
	if t.creator != 0 {
		s.prefixes.remove(t.creator)
	}
	t.release(&s.lists)
}

// announceLocked applies req to l, the list of t for the requester's
// family, and appends the peers the requester gets to resp. A new peer
// past the torrent's or its address's bound is answered from l but not
// recorded.
func announceLocked[K addrKey](s *Store, sh *shard, t *torrent, l *peerList[K], k K, req *bittorrent.AnnounceRequest, numWant int, now uint32, resp *bittorrent.AnnounceResponse) {
	seeder := req.Seeder()
	p := l.find(&s.lists, k)
	if p.i < 0 && req.Event != bittorrent.EventStopped {
		full := t.len() >= s.cfg.MaxPeersPerTorrent
		switch {
		case full:
			sh.bounds.swarmFull++
		case s.cfg.MaxPeersPerAddress < s.cfg.MaxPeersPerTorrent &&
			l.hostPeers(&s.lists, p.b, k, s.cfg.MaxPeersPerAddress) >= s.cfg.MaxPeersPerAddress:
			full = true
			sh.bounds.addressFull++
		}
		if full {
			resp.Peers.Bytes = l.pick(none, seeder, numWant, nextRand(&sh.rng), resp.Peers.Bytes)
			return
		}
	}
	at, ds, dl, completed, tooSoon := l.update(&s.lists, p, k, seeder, req.Event, now, s.throttle)
	sh.seeders += ds
	sh.leechers += dl
	if completed {
		t.downloaded++
	}
	if !tooSoon {
		resp.Peers.Bytes = l.pick(at, seeder, numWant, nextRand(&sh.rng), resp.Peers.Bytes)
	}
}

// Scrape implements swarm.Store. It locks one shard at a time, does no
// I/O and ignores ctx.
func (s *Store) Scrape(_ context.Context, sc []bittorrent.Scrape) error {
	for i := range sc {
		ih := sc[i].InfoHash
		h, sh := s.locate(ih)
		sh.mu.Lock()
		sc[i] = scrapeLocked(ih, sh.torrents.get(h, ih))
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
		for _, sl := range sh.torrents.slots {
			if sl.dist != 0 {
				batch = append(batch, scrapeLocked(sl.ih, sl.t))
			}
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
		st.Torrents += sh.torrents.n
		st.Seeders += sh.seeders
		st.Leechers += sh.leechers
		st.RefusedFull += sh.bounds.full
		st.RefusedPrefix += sh.bounds.prefix
		st.UnrecordedSwarmFull += sh.bounds.swarmFull
		st.UnrecordedAddressFull += sh.bounds.addressFull
		sh.mu.Unlock()
	}
	_, _, resident := s.lists.arena.inUse()
	st.OffHeapBytes = int64(resident)
	return st
}

// Sweep removes peers not seen for PeerTTL and torrents left with no peers
// and no activity for PeerTTL, and moves peer arrays out of sparse arena
// slabs so that those can go back to the system. It locks one shard at a
// time, so announces elsewhere go on.
func (s *Store) Sweep() {
	now := s.clock()
	ttl := uint32(s.cfg.PeerTTL / time.Second)
	expire := now >= ttl // nothing is older than the store before that
	cutoff := now - min(now, ttl)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		tb := &sh.torrents
		for j := 0; j < len(tb.slots); {
			t := tb.slots[j].t
			if t == nil {
				j++
				continue
			}
			if expire {
				ds, dl := t.v4.expire(&s.lists, now, ttl)
				sh.seeders -= ds
				sh.leechers -= dl
				if t.v6 != nil {
					ds, dl = t.v6.expire(&s.lists, now, ttl)
					sh.seeders -= ds
					sh.leechers -= dl
					if t.v6.len() == 0 {
						t.dropV6(&s.lists)
					}
				}
			}
			t.v4.compact(&s.lists)
			if t.v6 != nil {
				t.v6.compact(&s.lists)
			}
			if expire && t.empty() && t.lastSeen < cutoff {
				// Removing pulls the next entries back: look at this
				// slot again. (An entry that wrapped round to the
				// start may so be looked at twice, which is harmless.)
				tb.removeAt(j)
				s.forget(t)
				continue
			}
			j++
		}
		switch {
		case tb.n == 0:
			tb.resize(s.lists.arena, s.seed, 0)
		case len(tb.slots) > minSlots && tb.n*4 < len(tb.slots):
			tb.resize(s.lists.arena, s.seed, max(minSlots, tb.n*2))
		}
		sh.mu.Unlock()
	}
	s.lists.arena.dropWarm()
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
