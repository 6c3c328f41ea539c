package e2e

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
)

// The attacks of issue 14, item 2, on the swarm store, run over UDP
// against the warden binary from many loopback sources (every 127.x.y.z is
// local): a flood of new torrents in open mode, and a flood of ports into
// one registered torrent in allowlist mode.

// boundSource is one UDP client with its own loopback address: a socket
// connected to warden and the connection ID its connect earned.
type boundSource struct {
	c      *net.UDPConn
	connID uint64
	buf    []byte
}

// dialBoundSource connects from local to warden's UDP address and does the
// BEP 15 connect.
func dialBoundSource(local netip.Addr, server string) (*boundSource, error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), raddr)
	if err != nil {
		return nil, err
	}
	s := &boundSource{c: c, buf: make([]byte, 4096)}
	tid := rand.Uint32()
	reply, err := s.roundTrip(bep15.AppendConnect(nil, tid), tid)
	if err == nil {
		var f bep15.Fault
		if s.connID, f = bep15.CheckConnect(reply); f != bep15.NoFault {
			err = fmt.Errorf("connect reply %x: %v", reply, f)
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect from %v: %w", local, err)
	}
	return s, nil
}

// roundTrip sends req until the reply to transaction tid comes, three
// tries of a second each.
func (s *boundSource) roundTrip(req []byte, tid uint32) ([]byte, error) {
	for range 3 {
		if _, err := s.c.Write(req); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(time.Second)
		for {
			s.c.SetReadDeadline(deadline)
			n, err := s.c.Read(s.buf)
			if err != nil {
				break
			}
			if _, got, ok := bep15.ParseReplyHeader(s.buf[:n]); ok && got == tid {
				return s.buf[:n], nil
			}
		}
	}
	return nil, errors.New("no reply")
}

// announce sends one announce and returns the reply: an announce reply or
// an error action.
func (s *boundSource) announce(ih bittorrent.InfoHash, port uint16, numWant int32) ([]byte, error) {
	tid := rand.Uint32()
	a := bep15.Announce{InfoHash: ih, Left: 1 << 20, Event: uint32(bittorrent.EventStarted), NumWant: numWant, Port: port, Key: tid}
	copy(a.PeerID[:], fmt.Sprintf("-WE0001-%06d%06d", port, tid%1e6))
	return s.roundTrip(bep15.AppendAnnounce(nil, s.connID, tid, &a), tid)
}

// boundFlood is what the sources of a flood were told.
type boundFlood struct {
	mu       sync.Mutex
	sent, ok int
	refused  map[string]int // error messages, counted
}

// flood sends n announces from s, announce i for ih(i) from port(i), with
// up to 8 in flight, until all are answered or lost or deadline passes.
// A reply not back within 200 ms counts as lost.
func (s *boundSource) flood(f *boundFlood, n int, ih func(int) bittorrent.InfoHash, port func(int) uint16, deadline time.Time) {
	const window = 8
	var sent, ok int
	refused := map[string]int{}
	inFlight := 0
	var req []byte
	for (sent < n || inFlight > 0) && time.Now().Before(deadline) {
		for ; inFlight < window && sent < n; sent++ {
			a := bep15.Announce{InfoHash: ih(sent), Left: 1 << 20, Event: uint32(bittorrent.EventStarted), NumWant: 1, Port: port(sent), Key: uint32(sent)}
			copy(a.PeerID[:], fmt.Sprintf("-WE0001-%012d", sent))
			req = bep15.AppendAnnounce(req[:0], s.connID, uint32(sent), &a)
			if _, err := s.c.Write(req); err != nil {
				break
			}
			inFlight++
		}
		s.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		m, err := s.c.Read(s.buf)
		if err != nil {
			inFlight = 0 // lost; go on with the next
			continue
		}
		inFlight--
		switch action, _, _ := bep15.ParseReplyHeader(s.buf[:m]); action {
		case bep15.ActionAnnounce:
			ok++
		case bep15.ActionError:
			refused[string(bep15.ErrorMessage(s.buf[:m]))]++
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent += sent
	f.ok += ok
	if f.refused == nil {
		f.refused = map[string]int{}
	}
	for msg, c := range refused {
		f.refused[msg] += c
	}
}

// runBoundFlood dials a source from each address and floods from all of
// them at once, perSource announces each; ih and port get the source's
// index and the announce's.
func runBoundFlood(t *testing.T, server string, addrs []netip.Addr, perSource int, ih func(src, i int) bittorrent.InfoHash, port func(src, i int) uint16) *boundFlood {
	t.Helper()
	srcs := make([]*boundSource, len(addrs))
	for i, a := range addrs {
		s, err := dialBoundSource(a, server)
		if err != nil {
			t.Fatal(err)
		}
		defer s.c.Close()
		srcs[i] = s
	}
	f := &boundFlood{}
	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Go(func() {
			s.flood(f, perSource, func(n int) bittorrent.InfoHash { return ih(i, n) }, func(n int) uint16 { return port(i, n) }, deadline)
		})
	}
	wg.Wait()
	return f
}

// boundAddrs returns perNet addresses in each of nets /24s, from 127.a.b.1:
// the first in 127.a.b.0/24, and so on.
func boundAddrs(a byte, nets, perNet int) []netip.Addr {
	var out []netip.Addr
	for n := range nets {
		for h := range perNet {
			out = append(out, netip.AddrFrom4([4]byte{127, a, byte(n), byte(1 + h)}))
		}
	}
	return out
}

// swarmStats is the swarm part of GET /stats.
type swarmStats struct {
	Swarm struct {
		Torrents              int `json:"torrents"`
		Seeders               int `json:"seeders"`
		Leechers              int `json:"leechers"`
		RefusedFull           int `json:"refused_full"`
		RefusedPrefix         int `json:"refused_prefix"`
		UnrecordedAddressFull int `json:"unrecorded_address_full"`
	} `json:"swarm"`
}

func (w *wardenProc) swarmStats(t *testing.T) swarmStats {
	t.Helper()
	var st swarmStats
	if err := w.adminJSON(http.MethodGet, "/stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// residentMiB returns the resident set size of process pid, in MiB.
func residentMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmRSS of %d: %q", pid, v)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatalf("/proc/%d/status has no VmRSS", pid)
	return 0
}

// randomHash returns a made-up info hash, as a flood's are.
func randomHash() bittorrent.InfoHash {
	var ih bittorrent.InfoHash
	for i := 0; i < len(ih); i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8 && i+j < len(ih); j++ {
			ih[i+j] = byte(v >> (8 * j))
		}
	}
	return ih
}

// boundConfig raises the per-source limits out of the way, so that what
// stops a flood is the store's bounds and nothing else, and sets them.
const boundConfig = `
[limit]
rate_per_sec = 1000000.0
burst = 1000000
prefix_rate_per_sec = 1000000.0
prefix_burst = 1000000
[swarm]
max_torrents = 50000
max_torrents_per_prefix = 10000
`

// TestOpenFloodOfTorrentsIsBounded is the first attack: in open mode,
// made-up info hashes from many sources. A few networks hit their share of
// torrents; many networks fill the table, which then refuses new torrents
// calmly and holds its memory, while the torrents that were live before
// the flood go on as before.
func TestOpenFloodOfTorrentsIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	w := startWardenWith(t, wardenOpts{mode: "open", admin: true, config: boundConfig})
	pid := w.cmd.Process.Pid

	// Ten live torrents, two peers each, from addresses of their own.
	live := make([]bittorrent.InfoHash, 10)
	var liveSrcs []*boundSource
	for i := range live {
		live[i] = randomHash()
		for j := range 2 {
			s, err := dialBoundSource(netip.AddrFrom4([4]byte{127, 9, byte(i), byte(1 + j)}), w.udpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer s.c.Close()
			liveSrcs = append(liveSrcs, s)
			if reply, err := s.announce(live[i], 6881, 50); err != nil || bytes.HasPrefix(reply, []byte{0, 0, 0, bep15.ActionError}) {
				t.Fatalf("live torrent %d, peer %d: %x, %v", i, j, reply, err)
			}
		}
	}
	before := residentMiB(t, pid)

	// As in the issue: 26 addresses in 3 /24s, each network trying far
	// more than its share of 10,000.
	f := runBoundFlood(t, w.udpAddr, boundAddrs(60, 3, 9)[:26], 1500, func(int, int) bittorrent.InfoHash { return randomHash() }, func(src, _ int) uint16 { return uint16(10000 + src) })
	st := w.swarmStats(t)
	t.Logf("3 networks: %d announces sent, %d answered, refused %v; swarm %+v", f.sent, f.ok, f.refused, st.Swarm)
	if st.Swarm.RefusedPrefix == 0 || st.Swarm.Torrents > 10+3*10_000 {
		t.Errorf("3 networks hold %d torrents, %d refused for their share; want at most 3 × 10,000, the rest refused", st.Swarm.Torrents, st.Swarm.RefusedPrefix)
	}
	if f.refused["too many torrents from your network"] == 0 {
		t.Errorf("the flooding networks were not told why: %v", f.refused)
	}

	// Then many networks: far more new torrents than the table takes.
	perSource := 5000
	if raceEnabled {
		perSource = 1000 // a race build is several times slower; this still overfills the table
	}
	f = runBoundFlood(t, w.udpAddr, boundAddrs(61, 32, 2), perSource, func(int, int) bittorrent.InfoHash { return randomHash() }, func(src, _ int) uint16 { return uint16(20000 + src) })
	st = w.swarmStats(t)
	after := residentMiB(t, pid)
	t.Logf("64 networks: %d announces sent, %d answered, refused %v; swarm %+v; RSS %.1f → %.1f MiB", f.sent, f.ok, f.refused, st.Swarm, before, after)
	if st.Swarm.Torrents > 50_000 {
		t.Errorf("the store holds %d torrents, want at most max_torrents, 50,000", st.Swarm.Torrents)
	}
	if st.Swarm.RefusedFull == 0 || f.refused["tracker full: no new torrents for now"] == 0 {
		t.Errorf("no torrent refused for a full table (%d counted, replies %v)", st.Swarm.RefusedFull, f.refused)
	}
	// The memory bound is checked without the race detector, whose shadow
	// memory grows with the heap several times over.
	if grew := after - before; grew >= 64 && !raceEnabled {
		t.Errorf("RSS grew by %.1f MiB (%.1f → %.1f) during the flood, want less than 64", grew, before, after)
	}

	// The live torrents: their peers see each other, and newcomers join.
	for i, s := range liveSrcs {
		reply, err := s.announce(live[i/2], 6881, 50)
		if err != nil {
			t.Fatalf("live torrent %d, peer %d after the flood: %v", i/2, i%2, err)
		}
		if r, fault := bep15.CheckAnnounce(reply, false, 50); fault != bep15.NoFault || len(reply) != bep15.AnnounceReplyLen+6 || r.Leechers != 2 {
			t.Fatalf("live torrent %d, peer %d after the flood: reply %x (%v), want the other peer of 2", i/2, i%2, reply, fault)
		}
	}
	newcomer, err := dialBoundSource(netip.MustParseAddr("127.9.200.1"), w.udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer newcomer.c.Close()
	if reply, err := newcomer.announce(live[0], 6881, 50); err != nil || len(reply) != bep15.AnnounceReplyLen+12 {
		t.Fatalf("a newcomer to a live torrent after the flood: %x, %v; want its 2 peers", reply, err)
	}
	// A new torrent is refused, calmly: over HTTP with the announce
	// interval as the retry floor.
	ih := randomHash()
	a, err := w.announce("http", hex.EncodeToString(ih[:]))
	if err != nil || !a.refused || a.reason != "tracker full: no new torrents for now" || !bytes.Contains(a.body, []byte("8:intervali1800e")) {
		t.Fatalf("HTTP announce of a new torrent in a full table: %+v, %v; want the refusal with interval 1800", a, err)
	}
}

// TestPortFloodCannotEclipseSwarm is the second attack: in allowlist mode,
// within the default per-source limits, 110 addresses announce 400 ports
// each into one registered torrent. Each address keeps at most 4 of them
// (swarm.max_peers_per_address), so however often real clients ask, they
// see at most 4 ports of any attacker, and every honest peer stays.
func TestPortFloodCannotEclipseSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	w := startWardenWith(t, wardenOpts{admin: true})
	target := randomHash()
	w.register(t, hex.EncodeToString(target[:]), "target")

	honest := map[netip.AddrPort]bool{}
	for i := range 10 {
		a := netip.AddrFrom4([4]byte{127, 8, 0, byte(1 + i)})
		s, err := dialBoundSource(a, w.udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer s.c.Close()
		if reply, err := s.announce(target, 6881, 0); err != nil || len(reply) < bep15.AnnounceReplyLen {
			t.Fatalf("honest peer %v: %x, %v", a, reply, err)
		}
		honest[netip.AddrPortFrom(a, 6881)] = true
	}

	// 10 addresses in each of 11 /24s: 400 announces per address and 4,000
	// per /24 fit in the default bursts (500, 5,000).
	attackers := boundAddrs(70, 11, 10)
	f := runBoundFlood(t, w.udpAddr, attackers, 400, func(int, int) bittorrent.InfoHash { return target }, func(_, i int) uint16 { return uint16(30000 + i) })
	st := w.swarmStats(t)
	t.Logf("%d attackers: %d announces sent, %d answered, refused %v; swarm %+v", len(attackers), f.sent, f.ok, f.refused, st.Swarm)
	if f.ok < f.sent*9/10 {
		t.Fatalf("only %d of %d flood announces answered: the flood did not run inside the limits", f.ok, f.sent)
	}

	// Twenty real clients, each from an address of its own, ask for as
	// many peers as warden gives.
	ports := map[netip.Addr]map[uint16]bool{}
	seenHonest := map[netip.AddrPort]bool{}
	for i := range 20 {
		c, err := dialBoundSource(netip.AddrFrom4([4]byte{127, 7, 0, byte(1 + i)}), w.udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := c.announce(target, 6881, 200)
		c.c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, fault := bep15.CheckAnnounce(reply, false, 200); fault != bep15.NoFault {
			t.Fatalf("client %d: reply %x: %v", i, reply, fault)
		}
		peers := bittorrent.CompactPeers{Bytes: reply[bep15.AnnounceReplyLen:]}
		for _, p := range peers.All() {
			switch {
			case honest[p]:
				seenHonest[p] = true
				continue
			case p.Addr().As4()[1] == 7: // an earlier real client
				continue
			}
			if ports[p.Addr()] == nil {
				ports[p.Addr()] = map[uint16]bool{}
			}
			ports[p.Addr()][p.Port()] = true
		}
	}
	worst := 0
	for a, ps := range ports {
		if len(ps) > 4 {
			t.Errorf("real clients were handed %d ports of %v, want at most 4", len(ps), a)
		}
		worst = max(worst, len(ps))
	}
	t.Logf("20 replies of up to 200 peers: %d attacker addresses, at most %d ports each; %d of 10 honest peers", len(ports), worst, len(seenHonest))
	if len(seenHonest) != len(honest) {
		t.Errorf("real clients saw %d of the 10 honest peers, want all: none may be pushed out", len(seenHonest))
	}
	if held := st.Swarm.Seeders + st.Swarm.Leechers; held > len(attackers)*4+len(honest) {
		t.Errorf("the swarm holds %d peers, want at most 4 per attacking address plus the 10 honest ones", held)
	}
}
