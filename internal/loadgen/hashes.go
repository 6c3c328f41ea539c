package loadgen

import (
	"bufio"
	"crypto/sha1"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"warden/internal/bittorrent"
)

// GenerateHashes returns n info hashes that are the same on every call: the
// i-th is the SHA-1 of "warden-load " followed by i in decimal. Use it to
// write the whitelist of a tracker under test when no hashes file is given.
func GenerateHashes(n int) []bittorrent.InfoHash {
	hs := make([]bittorrent.InfoHash, n)
	var buf []byte
	for i := range hs {
		buf = strconv.AppendInt(append(buf[:0], "warden-load "...), int64(i), 10)
		hs[i] = sha1.Sum(buf)
	}
	return hs
}

// ReadHashes reads info hashes, one per line as 40 (or 64) hex digits.
// Blank lines and lines starting with # are skipped; anything else that is
// not a hash is an error naming its line. Duplicates are kept.
func ReadHashes(r io.Reader) ([]bittorrent.InfoHash, error) {
	var hs []bittorrent.InfoHash
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		h, err := bittorrent.ParseInfoHash(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		hs = append(hs, h)
	}
	return hs, sc.Err()
}

// loadHashes returns the legit hashes of a run.
func loadHashes(cfg *Config) ([]bittorrent.InfoHash, error) {
	if cfg.HashesFile == "" {
		return GenerateHashes(cfg.Torrents), nil
	}
	f, err := os.Open(cfg.HashesFile)
	if err != nil {
		return nil, fmt.Errorf("read hashes: %w", err)
	}
	defer f.Close()
	hs, err := ReadHashes(f)
	if err != nil {
		return nil, fmt.Errorf("read hashes %s: %w", cfg.HashesFile, err)
	}
	switch {
	case len(hs) == 0:
		return nil, fmt.Errorf("read hashes %s: no info hashes in file", cfg.HashesFile)
	case cfg.Torrents > len(hs):
		return nil, fmt.Errorf("read hashes %s: %d torrents asked for, file has %d", cfg.HashesFile, cfg.Torrents, len(hs))
	case cfg.Torrents > 0:
		hs = hs[:cfg.Torrents]
	}
	return hs, nil
}

// population is the simulated swarm: len(hashes) torrents with
// peersPerTorrent peers each, shared read-only by all workers. Peer i
// belongs to torrent i % len(hashes), so consecutive peers are in different
// torrents, and is the (i / len(hashes))-th peer of it.
type population struct {
	hashes          []bittorrent.InfoHash
	peersPerTorrent int
	workers         int
}

func (p *population) total() int { return len(p.hashes) * p.peersPerTorrent }

// peersOf returns how many peers worker w owns: those with i % workers == w.
// A worker that would own none (more workers than peers) gets one peer,
// shared with another worker, so every worker has work.
func (p *population) peersOf(w int) int {
	n := (p.total() - w + p.workers - 1) / p.workers
	return max(n, 1)
}

// peer returns the global index of worker w's j-th peer.
func (p *population) peer(w, j int) int {
	i := w + j*p.workers
	if i >= p.total() {
		i %= p.total()
	}
	return i
}

// simPeer is what an announce says about a simulated peer.
type simPeer struct {
	torrent int
	id      bittorrent.PeerID
	port    uint16
	left    uint64
	key     uint32
}

// peerIDPrefix starts every simulated peer ID, in the Azureus style.
const peerIDPrefix = "-WL0001-"

// fill describes worker w's j-th peer. Peers of one worker share its
// source address, so each gets its own port.
func (p *population) fill(w, j int, sp *simPeer) {
	i := p.peer(w, j)
	sp.torrent = i % len(p.hashes)
	copy(sp.id[:], peerIDPrefix)
	v := uint64(i)
	for k := len(sp.id) - 1; k >= len(peerIDPrefix); k-- {
		sp.id[k] = '0' + byte(v%10)
		v /= 10
	}
	sp.port = uint16(1024 + j%64000)
	sp.left = 1 << 30
	if (i/len(p.hashes))%4 == 0 {
		sp.left = 0
	}
	sp.key = uint32(i)*2654435761 + 1
}
