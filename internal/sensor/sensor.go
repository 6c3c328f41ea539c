// Package sensor counts, per source address, the packets warden never
// reads: TCP SYNs arriving at its own TCP ports (the kernel answers them,
// with SYN cookies under a flood, before warden accepts anything), and
// UDP datagrams to the tracker from sources banned in the kernel's socket
// filter (internal/udptracker/kernelban_linux.go), which the kernel drops
// before they are queued. It reports what it counts to a Sink, batched
// per source per poll, and nothing else: opening an episode, attribution
// and the record belong to package evidence, which implements Sink.
//
// # Mechanism
//
// A packet socket per address family (AF_PACKET, SOCK_RAW, bound to
// ETH_P_IP and ETH_P_IPV6, so it sees received packets only, never the
// host's own transmissions) carries a classic BPF filter that accepts
// only what is counted: a SYN without ACK to one of the TCP ports
// (SetPorts), or, over IPv4, a UDP datagram to one of the UDP ports from
// one of the banned prefixes (SetBanned, fed the very list the UDP
// frontend writes into its socket filters). Everything else is rejected
// in the kernel after a few instructions. What is accepted lands, cut to
// its first 64 bytes, in a memory-mapped TPACKET_V3 ring of blocks, which
// the sensor drains in one goroutine without a system call per packet.
// The taps run before the UDP socket's filter, so each datagram dropped
// there has been counted here.
//
// A UDP flood from one host can come as GSO super-packets (one packet
// carrying many datagrams, as warden load sends them on loopback), which
// the UDP layer splits only after the taps. The sockets ask for a
// virtio_net_hdr in front of every packet (PACKET_VNET_HDR); its
// gso_size says how many datagrams a packet carries, and each is counted.
//
// Why not the alternatives: the kernel counts what a socket filter drops
// but not per source (SO_MEMINFO says how many, not from whom); a
// counting eBPF program (github.com/cilium/ebpf) would count in a kernel
// map without copying packets out, but it needs CAP_BPF (Debian disables
// unprivileged BPF), a large new dependency, and, to count exactly what
// the UDP frontend drops, its classic filter rewritten in eBPF. The
// packet socket needs CAP_NET_RAW and the standard library's reach
// (x/sys, x/net/bpf); its cost, measured (measure_linux_test.go), is in
// docs/deploy.md.
//
// # Bounded memory
//
// Counts wait for the next poll in a fixed table (Config.Sources slots in
// sets of 8, placed by hash/maphash under a seed drawn at New, so nobody
// outside can aim at one set). A source that finds its set full takes
// the slot of the smallest count there, and that count goes to the Sink
// at once, so nothing is lost and a heavy hitter, whose count is never
// the smallest, keeps its slot: a flood of spoofed one-off sources costs
// one Sink call per packet instead of one per source per poll, and no
// memory. The rings are allocated at New; nothing grows with the number
// of sources (TestMemoryFixedWithManySources: ten million).
//
// # Kernel counters
//
// Stats adds what the kernel itself counts in /proc/net/netstat (TcpExt:
// SYN cookies sent, accepted and failed, listen queue overflows and
// drops) and what the packet sockets could not deliver because the ring
// was full (PACKET_STATISTICS): the sensor's own drops, which make its
// counts low.
//
// The sensor needs Linux and CAP_NET_RAW (root has it); New says so when
// either is missing, and elsewhere returns ErrNotSupported.
package sensor

import (
	"errors"
	"time"

	"warden/internal/confkey"
	"warden/internal/procstat"
)

// numKinds is the number of Kinds: the table keeps a count of each.
const numKinds = int(KernelDropped) + 1

// Spoofable reports whether a count of this kind may come from a forged
// source address. It is true of every kind: neither a SYN nor a datagram
// shows that its sender receives at its address, and the sensor sees
// neither a reply nor a handshake.
func (k Kind) Spoofable() bool { return true }

// ErrNotSupported is returned by New where the sensor cannot work: any OS
// but Linux.
var ErrNotSupported = errors.New("sensor: packet sockets need Linux")

// Config sets up a sensor. It is meant to be embedded in the evidence
// section of the config file, so its keys read evidence.sensor,
// evidence.sensor_ring_bytes and so on.
type Config struct {
	// Enabled turns the sensor on. It needs Linux and CAP_NET_RAW; warden
	// serve does not create a sensor when it is off.
	Enabled bool `toml:"sensor"`
	// RingBytes is the size of each of the two rings (IPv4 and IPv6) the
	// kernel writes accepted packets to, allocated at New, in blocks of
	// 64 KiB. A packet takes 160 bytes of it, so the default 4 MiB hold
	// some 26,000: 50 ms of a 500,000 packets/s flood, while the sensor
	// drains the rings every 10 ms. Packets that find it full are counted
	// in Stats.RingDrops and lost to the counts.
	RingBytes int `toml:"sensor_ring_bytes"`
	// Sources is the number of sources the table holds between two polls
	// (40 bytes each); a source beyond it is reported early, never lost.
	Sources int `toml:"sensor_sources"`
	// Poll is how often the counts are handed to the Sink.
	Poll time.Duration `toml:"sensor_poll"`
}

// DefaultConfig returns the sensor off, with 4 MiB rings, 16,384 sources
// and a poll every 100 ms.
func DefaultConfig() Config {
	return Config{RingBytes: 4 << 20, Sources: 16384, Poll: 100 * time.Millisecond}
}

// Limits of Config's fields.
const (
	minRingBytes = 2 * blockBytes
	maxRingBytes = 1 << 30
	minSources   = ways
	maxSources   = 1 << 24
	minPoll      = 10 * time.Millisecond
	maxPoll      = 10 * time.Second
)

// Validate names the first field that cannot work, as a *confkey.Error.
// A sensor that is off is not checked.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.RingBytes < minRingBytes || c.RingBytes > maxRingBytes {
		return confkey.Errorf("sensor_ring_bytes", "must be %d-%d, got %d", minRingBytes, maxRingBytes, c.RingBytes)
	}
	if c.Sources < minSources || c.Sources > maxSources {
		return confkey.Errorf("sensor_sources", "must be %d-%d, got %d", minSources, maxSources, c.Sources)
	}
	if c.Poll < minPoll || c.Poll > maxPoll {
		return confkey.Errorf("sensor_poll", "must be %v-%v, got %v", minPoll, maxPoll, c.Poll)
	}
	return nil
}

// Ports are the ports whose traffic the sensor counts.
type Ports struct {
	// TCP are warden's TCP ports (HTTP tracker, web seeds, admin): SYNs
	// to them are counted.
	TCP []uint16
	// UDP are the UDP tracker's ports: datagrams to them from the banned
	// prefixes are counted.
	UDP []uint16
}

// MaxPorts is how many ports of each protocol SetPorts takes.
const MaxPorts = 16

// MaxBanned is how many banned prefixes SetBanned takes: as many as the
// UDP frontend puts in its socket filters.
const MaxBanned = 1000

// Stats are the sensor's counters since New, and the kernel's.
type Stats struct {
	// SYN and KernelDropped count the packets of each kind seen.
	SYN           uint64 `json:"syn"`
	KernelDropped uint64 `json:"kernel_dropped"`
	// RingPackets counts the packets the filters accepted, RingDrops
	// those of them the kernel could not put in a ring because the sensor
	// had not drained it: the sensor's own losses.
	RingPackets uint64 `json:"ring_packets"`
	RingDrops   uint64 `json:"ring_drops"`
	// Evicted counts sources reported before the end of a poll because
	// their set of the table was full (the counts are not lost).
	Evicted uint64 `json:"evicted"`
	// Malformed counts packets in the ring the sensor could not read.
	Malformed uint64 `json:"malformed"`
	// TCPPorts, UDPPorts and Banned are the sizes of what the filters
	// select.
	TCPPorts int `json:"tcp_ports"`
	UDPPorts int `json:"udp_ports"`
	Banned   int `json:"banned_prefixes"`
	// TCP is the kernel's own count for the whole network namespace; nil
	// if /proc/net/netstat could not be read.
	TCP *procstat.TCP `json:"tcp,omitempty"`
}
