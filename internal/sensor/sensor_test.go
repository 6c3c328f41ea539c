package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"

	"warden/internal/confkey"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// recorder is a Sink that sums what it is told, per source and kind.
type recorder struct {
	mu    sync.Mutex
	n     map[key]uint64
	calls map[key]int
}

type key struct {
	src  netip.Addr
	kind Kind
}

func newRecorder() *recorder {
	return &recorder{n: make(map[key]uint64), calls: make(map[key]int)}
}

func (r *recorder) Sensed(src netip.Addr, kind Kind, n uint64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[key{src, kind}] += n
	r.calls[key{src, kind}]++
}

func (r *recorder) get(src netip.Addr, kind Kind) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key{src, kind}]
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.n)
}

// Packets for the filters and the frame parser, built by hand.

func tcpHeader(dport uint16, flags byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], dport)
	h[12] = 5 << 4
	h[13] = flags
	return h
}

func udpHeader(dport uint16, payload int) []byte {
	h := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+payload))
	return h
}

// ipv4 wraps l4 in an IPv4 header with optWords 32-bit words of options
// and the given flags-and-fragment-offset field.
func ipv4(src string, proto byte, l4 []byte, optWords int, frag uint16) []byte {
	hl := 20 + 4*optWords
	p := make([]byte, hl, hl+len(l4))
	p[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(p[2:], uint16(hl+len(l4)))
	binary.BigEndian.PutUint16(p[6:], frag)
	p[8], p[9] = 64, proto
	a := netip.MustParseAddr(src).As4()
	copy(p[12:], a[:])
	copy(p[16:], []byte{127, 0, 0, 1})
	return append(p, l4...)
}

func ipv6(src string, next byte, l4 []byte) []byte {
	p := make([]byte, 40, 40+len(l4))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(l4)))
	p[6], p[7] = next, 64
	a := netip.MustParseAddr(src).As16()
	copy(p[8:], a[:])
	p[39] = 1
	return append(p, l4...)
}

// vm runs the program of sel for family v6 on bare IP packets.
func vm(t testing.TB, sel selection, v6 bool) *bpf.VM {
	t.Helper()
	raw, err := sel.filter(v6, 0)
	if err != nil {
		t.Fatalf("filter: %v", err)
	}
	prog := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		prog[i] = r.Disassemble()
	}
	m, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return m
}

func mustSelection(t testing.TB, p Ports, banned ...string) selection {
	t.Helper()
	var pp []netip.Prefix
	for _, b := range banned {
		pp = append(pp, netip.MustParsePrefix(b))
	}
	sel, err := newSelection(p, pp)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// TestFilter runs the filters in x/net/bpf's VM, which reads loads at
// offset 0 as the kernel reads them at SKF_NET_OFF.
func TestFilter(t *testing.T) {
	sel := mustSelection(t, Ports{TCP: []uint16{6969, 80}, UDP: []uint16{6969}},
		"127.1.0.1/32", "203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32")
	const syn, synack, ack, rst = tcpSYN, tcpSYN | tcpACK, tcpACK, 0x04
	tests := []struct {
		name string
		v6   bool
		pkt  []byte
		want bool
	}{
		{"SYN to a counted port", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn), 0, 0), true},
		{"SYN to the other counted port", false, ipv4("198.51.100.7", protoTCP, tcpHeader(80, syn), 0, 0), true},
		{"SYN with ECN flags", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn|0xC0), 0, 0), true},
		{"SYN behind IP options", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn), 3, 0), true},
		{"SYN with DF", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn), 0, 0x4000), true},
		{"SYN to another port", false, ipv4("198.51.100.7", protoTCP, tcpHeader(22, syn), 0, 0), false},
		{"SYN-ACK", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, synack), 0, 0), false},
		{"ACK", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, ack), 0, 0), false},
		{"RST", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, rst), 0, 0), false},
		{"later fragment", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn), 0, 0x0010), false},
		{"truncated TCP header", false, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn)[:10], 0, 0), false},
		{"banned address, UDP", false, ipv4("127.1.0.1", protoUDP, udpHeader(6969, 16), 0, 0), true},
		{"banned /24, UDP", false, ipv4("203.0.113.200", protoUDP, udpHeader(6969, 16), 0, 0), true},
		{"banned /8, UDP behind options", false, ipv4("10.9.8.7", protoUDP, udpHeader(6969, 16), 2, 0), true},
		{"banned, first fragment", false, ipv4("10.9.8.7", protoUDP, udpHeader(6969, 16), 0, 0x2000), true},
		{"banned, later fragment", false, ipv4("10.9.8.7", protoUDP, udpHeader(6969, 16), 0, 0x2001), false},
		{"banned, other UDP port", false, ipv4("127.1.0.1", protoUDP, udpHeader(53, 16), 0, 0), false},
		{"next to a banned address", false, ipv4("127.1.0.2", protoUDP, udpHeader(6969, 16), 0, 0), false},
		{"next to a banned /24", false, ipv4("203.0.114.1", protoUDP, udpHeader(6969, 16), 0, 0), false},
		{"banned, ICMP", false, ipv4("127.1.0.1", 1, udpHeader(6969, 16), 0, 0), false},
		{"IPv6 on the IPv4 socket", false, ipv6("2001:db8::1", protoTCP, tcpHeader(6969, syn)), false},
		{"empty", false, nil, false},
		{"IPv6 SYN", true, ipv6("2001:db8::1", protoTCP, tcpHeader(6969, syn)), true},
		{"IPv6 SYN to another port", true, ipv6("2001:db8::1", protoTCP, tcpHeader(22, syn)), false},
		{"IPv6 SYN-ACK", true, ipv6("2001:db8::1", protoTCP, tcpHeader(6969, synack)), false},
		{"IPv6 UDP from a banned /32", true, ipv6("2001:db8::1", protoUDP, udpHeader(6969, 16)), false},
		{"IPv6 SYN behind a hop-by-hop header", true, ipv6("2001:db8::1", 0, tcpHeader(6969, syn)), false},
		{"IPv4 on the IPv6 socket", true, ipv4("198.51.100.7", protoTCP, tcpHeader(6969, syn), 0, 0), false},
	}
	m4, m6 := vm(t, sel, false), vm(t, sel, true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := m4
			if tt.v6 {
				m = m6
			}
			n, err := m.Run(tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != tt.want {
				t.Fatalf("filter returned %d, want accepted = %v", n, tt.want)
			}
			if n > 0 && n != snapLen {
				t.Fatalf("filter keeps %d bytes, want %d", n, snapLen)
			}
			if want := reference(sel, tt.pkt, tt.v6); want != tt.want {
				t.Fatalf("reference filter says %v, the table %v", want, tt.want)
			}
		})
	}
}

// TestFilterEmpty: with nothing to count the filters accept nothing, and
// bans alone (no UDP port) or ports alone (no ban) count no datagram.
func TestFilterEmpty(t *testing.T) {
	pkts := [][]byte{
		ipv4("127.1.0.1", protoUDP, udpHeader(6969, 16), 0, 0),
		ipv4("127.1.0.1", protoTCP, tcpHeader(6969, tcpSYN), 0, 0),
		ipv6("::1", protoTCP, tcpHeader(6969, tcpSYN)),
	}
	for _, sel := range []selection{
		{},
		mustSelection(t, Ports{}, "127.1.0.0/16"),
		mustSelection(t, Ports{UDP: []uint16{6969}}),
	} {
		for _, v6 := range []bool{false, true} {
			m := vm(t, sel, v6)
			for _, p := range pkts {
				if n, _ := m.Run(p); n != 0 {
					t.Errorf("selection %+v accepted %x", sel, p)
				}
			}
		}
	}
}

// reference is the filters' contract in plain Go: what a filter must
// accept. Packets too short for a field the decision needs are rejected,
// as the kernel does when a load falls off the end.
func reference(sel selection, p []byte, v6 bool) bool {
	if v6 {
		if len(sel.tcp) == 0 || len(p) < 40+14 || p[0]>>4 != 6 || p[6] != protoTCP {
			return false
		}
		return p[40+13]&(tcpSYN|tcpACK) == tcpSYN && slices.Contains(sel.tcp, binary.BigEndian.Uint16(p[42:]))
	}
	if len(p) < 10 || p[0]>>4 != 4 || binary.BigEndian.Uint16(p[6:])&0x1FFF != 0 {
		return false
	}
	hl := int(p[0]&0x0F) * 4
	switch p[9] {
	case protoTCP:
		if len(sel.tcp) == 0 || len(p) < hl+14 {
			return false
		}
		return p[hl+13]&(tcpSYN|tcpACK) == tcpSYN && slices.Contains(sel.tcp, binary.BigEndian.Uint16(p[hl+2:]))
	case protoUDP:
		if len(sel.udp) == 0 || len(sel.banned) == 0 || len(p) < hl+4 || len(p) < 16 {
			return false
		}
		if !slices.Contains(sel.udp, binary.BigEndian.Uint16(p[hl+2:])) {
			return false
		}
		src := netip.AddrFrom4([4]byte(p[12:16]))
		return slices.ContainsFunc(sel.banned, func(b netip.Prefix) bool { return b.Contains(src) })
	}
	return false
}

// FuzzFilter checks the compiled filters against reference on any bytes.
func FuzzFilter(f *testing.F) {
	f.Add(ipv4("127.1.0.1", protoUDP, udpHeader(6969, 16), 0, 0), false)
	f.Add(ipv4("198.51.100.7", protoTCP, tcpHeader(6969, tcpSYN), 5, 0), false)
	f.Add(ipv6("2001:db8::1", protoTCP, tcpHeader(80, tcpSYN)), true)
	f.Add([]byte{0x4F}, false) // a header length past the packet
	sel := mustSelection(f, Ports{TCP: []uint16{6969, 80}, UDP: []uint16{6969, 6970}},
		"127.1.0.1/32", "203.0.113.0/24", "10.0.0.0/8", "0.0.0.0/1")
	m4, m6 := vm(f, sel, false), vm(f, sel, true)
	f.Fuzz(func(t *testing.T, p []byte, v6 bool) {
		m := m4
		if v6 {
			m = m6
		}
		n, err := m.Run(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := reference(sel, p, v6); (n > 0) != want {
			t.Fatalf("filter returned %d for %x, reference says %v", n, p, want)
		}
	})
}

// TestFilterSize builds the largest selection: it must assemble (jumps
// within reach) and fit the kernel's 4096 instructions, and still match
// the last prefix.
func TestFilterSize(t *testing.T) {
	var banned []netip.Prefix
	for i := range MaxBanned {
		bits := 32 - i%9 // nine prefix lengths
		banned = append(banned, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), bits))
	}
	var ports []uint16
	for i := range MaxPorts {
		ports = append(ports, uint16(7000+i))
	}
	sel, err := newSelection(Ports{TCP: ports, UDP: ports}, banned)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sel.filter(false, skfNetOff)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 4096 {
		t.Fatalf("%d instructions, the kernel takes at most 4096", len(raw))
	}
	last := sel.banned[len(sel.banned)-1]
	if n, _ := vm(t, sel, false).Run(ipv4(last.Addr().String(), protoUDP, udpHeader(7015, 8), 0, 0)); n == 0 {
		t.Fatalf("the last prefix, %v, is not matched", last)
	}
}

func TestNewSelection(t *testing.T) {
	many := make([]uint16, MaxPorts+1)
	for i := range many {
		many[i] = uint16(i + 1)
	}
	tooMany := make([]netip.Prefix, MaxBanned+1)
	for i := range tooMany {
		tooMany[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
	}
	tests := []struct {
		name    string
		ports   Ports
		banned  []netip.Prefix
		want    selection
		wantErr string
	}{
		{name: "sorted, unique, masked, IPv6 and invalid left out",
			ports: Ports{TCP: []uint16{80, 6969, 80}, UDP: []uint16{6969}},
			banned: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8"), netip.MustParsePrefix("2001:db8::/32"),
				{}, netip.MustParsePrefix("127.1.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")},
			want: selection{tcp: []uint16{80, 6969}, udp: []uint16{6969},
				banned: []netip.Prefix{netip.MustParsePrefix("127.1.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}},
		{name: "port 0", ports: Ports{TCP: []uint16{0}}, wantErr: "sensor: port 0"},
		{name: "too many ports", ports: Ports{UDP: many}, wantErr: "sensor: 0 TCP and 17 UDP ports, at most 16 each"},
		{name: "too many bans", banned: tooMany, wantErr: "sensor: 1001 banned prefixes, at most 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newSelection(tt.ports, tt.banned)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("newSelection = %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.tcp, tt.want.tcp) || !slices.Equal(got.udp, tt.want.udp) || !slices.Equal(got.banned, tt.want.banned) {
				t.Fatalf("newSelection = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantKey string // "" means valid
	}{
		{"default, off", func(c *Config) {}, ""},
		{"default, on", func(c *Config) { c.Enabled = true }, ""},
		{"off is not checked", func(c *Config) { c.RingBytes = 0 }, ""},
		{"ring too small", func(c *Config) { c.Enabled, c.RingBytes = true, blockBytes }, "sensor_ring_bytes"},
		{"ring too large", func(c *Config) { c.Enabled, c.RingBytes = true, 2<<30 }, "sensor_ring_bytes"},
		{"no sources", func(c *Config) { c.Enabled, c.Sources = true, 0 }, "sensor_sources"},
		{"poll too fast", func(c *Config) { c.Enabled, c.Poll = true, time.Millisecond }, "sensor_poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			var ce *confkey.Error
			switch {
			case tt.wantKey == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.wantKey != "" && (!errors.As(err, &ce) || ce.Key != tt.wantKey):
				t.Fatalf("Validate = %v, want an error for %s", err, tt.wantKey)
			}
		})
	}
}

// Ring blocks, laid out as the kernel writes them.

const testLinkLen = 14 // Ethernet or loopback

// frameSpec is one packet to put in a test block.
type frameSpec struct {
	ip      []byte // from the network header, as much as was captured
	origLen int    // the packet's length from the network header; 0: len(ip)
	gsoType byte
	gsoSize uint16
}

// appendBlock returns a ring block holding frames, with the kernel's
// offsets: tpacket3_hdr, sockaddr_ll, virtio_net_hdr, link header, data.
func appendBlock(blk []byte, frames []frameSpec) []byte {
	start := len(blk)
	blk = append(blk, make([]byte, blockHeaderBytes)...)
	host.PutUint32(blk[start+blockNumPktsOff:], uint32(len(frames)))
	host.PutUint32(blk[start+blockFirstOff:], blockHeaderBytes)
	const mac = 92 // 96 (aligned headers) + 10 (virtio_net_hdr) - 14 (link)
	for i, fs := range frames {
		off := len(blk)
		data := append(make([]byte, testLinkLen), fs.ip...)
		size := (mac + len(data) + 7) &^ 7
		blk = append(blk, make([]byte, size)...)
		f := blk[off:]
		if i < len(frames)-1 {
			host.PutUint32(f[frameNextOff:], uint32(size))
		}
		orig := fs.origLen
		if orig == 0 {
			orig = len(fs.ip)
		}
		host.PutUint32(f[frameSnapOff:], uint32(len(data)))
		host.PutUint32(f[frameLenOff:], uint32(testLinkLen+orig))
		host.PutUint16(f[frameMacOff:], mac)
		host.PutUint16(f[frameNetOff:], mac+testLinkLen)
		f[mac-vnetHdrBytes+vnetGSOTypeAt] = fs.gsoType
		host.PutUint16(f[mac-vnetHdrBytes+vnetGSOSizeAt:], fs.gsoSize)
		copy(f[mac:], data)
	}
	return blk
}

type parsed struct {
	src  netip.Addr
	kind Kind
	n    uint64
}

func TestParseFrames(t *testing.T) {
	syn4 := ipv4("198.51.100.7", protoTCP, tcpHeader(6969, tcpSYN), 0, 0)
	udp := func(payload int) []byte { return ipv4("127.1.0.1", protoUDP, udpHeader(6969, payload), 0, 0) }
	udpOpts := ipv4("127.1.0.1", protoUDP, udpHeader(6969, 100), 1, 0)
	syn6 := ipv6("2001:db8::7", protoTCP, tcpHeader(6969, tcpSYN))
	tests := []struct {
		name   string
		frames []frameSpec
		want   []parsed
		bad    int
	}{
		{name: "SYNs", frames: []frameSpec{{ip: syn4}, {ip: syn6}},
			want: []parsed{{netip.MustParseAddr("198.51.100.7"), SYN, 1}, {netip.MustParseAddr("2001:db8::7"), SYN, 1}}},
		{name: "datagram", frames: []frameSpec{{ip: udp(100)}},
			want: []parsed{{netip.MustParseAddr("127.1.0.1"), KernelDropped, 1}}},
		{name: "GSO: 10 and a half datagrams of 100 bytes",
			frames: []frameSpec{{ip: udp(100)[:snapLen-testLinkLen], origLen: 28 + 1050, gsoType: vnetGSOUDPL4, gsoSize: 100}},
			want:   []parsed{{netip.MustParseAddr("127.1.0.1"), KernelDropped, 11}}},
		{name: "GSO behind IP options: 3 datagrams exactly",
			frames: []frameSpec{{ip: udpOpts[:snapLen-testLinkLen], origLen: 32 + 300, gsoType: vnetGSOUDPL4, gsoSize: 100}},
			want:   []parsed{{netip.MustParseAddr("127.1.0.1"), KernelDropped, 3}}},
		{name: "GSO with ECN bit",
			frames: []frameSpec{{ip: udp(100)[:snapLen-testLinkLen], origLen: 28 + 400, gsoType: vnetGSOUDPL4 | 0x80, gsoSize: 100}},
			want:   []parsed{{netip.MustParseAddr("127.1.0.1"), KernelDropped, 4}}},
		{name: "UFO: one datagram in fragments",
			frames: []frameSpec{{ip: udp(100)[:snapLen-testLinkLen], origLen: 28 + 4000, gsoType: 3, gsoSize: 1480}},
			want:   []parsed{{netip.MustParseAddr("127.1.0.1"), KernelDropped, 1}}},
		{name: "GSO length shorter than headers",
			frames: []frameSpec{{ip: udp(100), origLen: 20, gsoType: vnetGSOUDPL4, gsoSize: 100}},
			want:   []parsed{{netip.MustParseAddr("127.1.0.1"), KernelDropped, 1}}},
		{name: "short and unknown packets", frames: []frameSpec{{ip: syn4[:19]}, {ip: []byte{0x50, 1, 2}}, {ip: ipv4("1.2.3.4", 1, nil, 0, 0)}, {ip: syn6[:23]}, {ip: ipv6("::1", protoUDP, nil)}},
			bad: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []parsed
			bad := 0
			blk := appendBlock(nil, tt.frames)
			n, ok := walkBlock(blk, func(f []byte) {
				src, kind, n, ok := parseFrame(f, true)
				if !ok {
					bad++
					return
				}
				got = append(got, parsed{netip.AddrFrom16(src).Unmap(), kind, n})
			})
			if !ok || n != len(tt.frames) {
				t.Fatalf("walkBlock visited %d of %d frames, ok %v", n, len(tt.frames), ok)
			}
			if !slices.Equal(got, tt.want) || bad != tt.bad {
				t.Fatalf("parsed %v and %d bad, want %v and %d", got, bad, tt.want, tt.bad)
			}
		})
	}
}

// TestWalkBlockBounds: offsets the kernel never writes must not take a
// read outside the block.
func TestWalkBlockBounds(t *testing.T) {
	good := appendBlock(nil, []frameSpec{{ip: ipv4("127.1.0.1", protoUDP, udpHeader(6969, 8), 0, 0)}, {ip: ipv6("::1", protoTCP, tcpHeader(1, tcpSYN))}})
	tests := []struct {
		name string
		edit func(b []byte) []byte
		want int // frames visited
	}{
		{"short block", func(b []byte) []byte { return b[:20] }, 0},
		{"first packet outside", func(b []byte) []byte { host.PutUint32(b[blockFirstOff:], uint32(len(b))); return b }, 0},
		{"first packet in the header", func(b []byte) []byte { host.PutUint32(b[blockFirstOff:], 8); return b }, 0},
		{"more packets than there are", func(b []byte) []byte { host.PutUint32(b[blockNumPktsOff:], 1<<31); return b }, 2},
		{"next offset past the end", func(b []byte) []byte { host.PutUint32(b[blockHeaderBytes:], 1<<30); return b }, 0},
		{"next offset zero too early", func(b []byte) []byte { host.PutUint32(b[blockHeaderBytes:], 0); return b }, 1},
		{"next offset too small", func(b []byte) []byte { host.PutUint32(b[blockHeaderBytes:], 4); return b }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(slices.Clone(good))
			n, ok := walkBlock(b, func(f []byte) { parseFrame(f, true) })
			if ok || n != tt.want {
				t.Fatalf("walkBlock = %d, %v; want %d, false", n, ok, tt.want)
			}
		})
	}
}

// FuzzWalkBlock feeds any bytes to the block walker and the parser:
// neither may panic, and what they report stays within bounds.
func FuzzWalkBlock(f *testing.F) {
	f.Add(appendBlock(nil, []frameSpec{{ip: ipv4("127.1.0.1", protoUDP, udpHeader(6969, 8), 0, 0)}}))
	f.Add(appendBlock(nil, []frameSpec{{ip: ipv4("127.1.0.1", protoUDP, udpHeader(6969, 100), 0, 0), origLen: 60000, gsoType: vnetGSOUDPL4, gsoSize: 1}}))
	f.Add(appendBlock(nil, []frameSpec{{ip: ipv6("::1", protoTCP, tcpHeader(1, tcpSYN))}, {ip: []byte{0x45}}}))
	f.Fuzz(func(t *testing.T, blk []byte) {
		walkBlock(blk, func(fr []byte) {
			if len(fr) > len(blk) {
				t.Fatalf("frame of %d bytes from a block of %d", len(fr), len(blk))
			}
			if _, kind, n, ok := parseFrame(fr, true); ok && (n == 0 || n > maxSegments || int(kind) >= numKinds) {
				t.Fatalf("parseFrame: kind %v, n %d", kind, n)
			}
		})
	})
}

// tally is a Sink in fixed memory: totals, and one source's count.
type tally struct {
	watch        netip.Addr
	total, calls uint64
	watched      uint64
	watchedCalls uint64
}

func (s *tally) Sensed(src netip.Addr, kind Kind, n uint64, now time.Time) {
	s.total += n
	s.calls++
	if src == s.watch {
		s.watched += n
		s.watchedCalls++
	}
}

func TestTable(t *testing.T) {
	rec := newRecorder()
	tb := newTable(16) // two sets of eight
	now := time.Now()
	a := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	tb.add(a("::ffff:198.51.100.7"), SYN, 1, rec, now)
	tb.add(a("::ffff:198.51.100.7"), SYN, 2, rec, now)
	tb.add(a("::ffff:198.51.100.7"), KernelDropped, 5, rec, now)
	tb.add(a("2001:db8::1"), SYN, 1, rec, now)
	if len(rec.n) != 0 {
		t.Fatalf("reported before the flush: %v", rec)
	}
	tb.flush(rec, now)
	want := map[key]uint64{
		{netip.MustParseAddr("198.51.100.7"), SYN}:           3,
		{netip.MustParseAddr("198.51.100.7"), KernelDropped}: 5,
		{netip.MustParseAddr("2001:db8::1"), SYN}:            1,
	}
	if len(rec.n) != len(want) {
		t.Fatalf("flushed %v, want %v", rec, want)
	}
	for k, n := range want {
		if rec.n[k] != n || rec.calls[k] != 1 {
			t.Fatalf("flushed %v (calls %v), want %v once each", rec, rec.calls, want)
		}
	}
	if len(tb.used) != 0 || slices.ContainsFunc(tb.slots, func(s slot) bool { return s.taken }) {
		t.Fatal("table not empty after flush")
	}

	// A full table: new sources push out the smallest counts, which are
	// reported at once; the heavy source stays.
	rec = newRecorder()
	heavy := a("::ffff:203.0.113.1")
	tb.add(heavy, SYN, 1000, rec, now)
	for i := range 1000 {
		tb.add(a(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()), SYN, 1, rec, now)
	}
	if rec.n[key{netip.MustParseAddr("203.0.113.1"), SYN}] != 0 {
		t.Fatal("the heavy source was evicted")
	}
	if tb.evicted != 1000-15 {
		t.Fatalf("%d evictions, want %d", tb.evicted, 1000-15)
	}
	tb.flush(rec, now)
	var sum uint64
	for _, n := range rec.n {
		sum += n
	}
	if sum != 2000 {
		t.Fatalf("reported %d packets in all, want 2000", sum)
	}
}

func TestTableAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tb := newTable(64)
	sink := &tally{}
	now := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	var a [16]byte
	if n := testing.AllocsPerRun(10000, func() {
		binary.LittleEndian.PutUint64(a[8:], r.Uint64())
		tb.add(a, SYN, 1, sink, now)
	}); n != 0 {
		t.Fatalf("add allocates %v times", n)
	}
	blk := appendBlock(nil, []frameSpec{{ip: ipv4("127.1.0.1", protoUDP, udpHeader(6969, 8), 0, 0)}})
	visit := func(f []byte) {
		src, kind, n, _ := parseFrame(f, true)
		tb.add(src, kind, n, sink, now)
	}
	if n := testing.AllocsPerRun(1000, func() { walkBlock(blk, visit); tb.flush(sink, now) }); n != 0 {
		t.Fatalf("walk, count and flush allocate %v times", n)
	}
}

// TestMemoryFixedWithManySources feeds ten million packets from random
// spoofed sources, and one heavy source among them, through the ring
// parser and the table as Run does, flushing as each poll would: the heap
// must not grow, the heavy source's count must be exact, and it must
// keep its slot (one report per poll, not one per packet).
func TestMemoryFixedWithManySources(t *testing.T) {
	const (
		total    = 10_000_000
		perBlock = 1000    // frames in the test block
		perPoll  = 100_000 // a flush every 100 blocks, as at a flood of 1M packets/s polled every 100 ms
		heavyIn  = 10      // every tenth packet is the heavy source's
	)
	if testing.Short() {
		t.Skip("ten million packets")
	}
	heavy := netip.MustParseAddr("203.0.113.1")
	frames := make([]frameSpec, perBlock)
	for i := range frames {
		if i%heavyIn == 0 {
			frames[i] = frameSpec{ip: ipv4(heavy.String(), protoTCP, tcpHeader(6969, tcpSYN), 0, 0)}
		} else if i%2 == 0 {
			frames[i] = frameSpec{ip: ipv6("2001:db8::", protoTCP, tcpHeader(6969, tcpSYN))}
		} else {
			frames[i] = frameSpec{ip: ipv4("10.0.0.0", protoUDP, udpHeader(6969, 8), 0, 0)}
		}
	}
	blk := appendBlock(nil, frames)
	// Where each random frame's source address sits in blk.
	var srcs []int
	walkBlock(blk, func(f []byte) {
		off := int(uintptr(unsafe.Pointer(&f[0]))-uintptr(unsafe.Pointer(&blk[0]))) + int(host.Uint16(f[frameNetOff:]))
		switch blk[off] >> 4 {
		case 4:
			if netip.AddrFrom4([4]byte(blk[off+12:])) != heavy {
				srcs = append(srcs, off+12)
			}
		case 6:
			srcs = append(srcs, off+8+4) // random /64s of 2001:db8::/32
		}
	})
	tb := newTable(DefaultConfig().Sources)
	sink := &tally{watch: heavy}
	now := time.Now()
	visit := func(f []byte) {
		src, kind, n, ok := parseFrame(f, true)
		if !ok {
			t.Fatal("a test frame did not parse")
		}
		tb.add(src, kind, n, sink, now)
	}
	r := rand.New(rand.NewPCG(3, 4))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range total / perBlock {
		for _, off := range srcs {
			binary.LittleEndian.PutUint32(blk[off:], r.Uint32())
		}
		if n, ok := walkBlock(blk, visit); !ok || n != perBlock {
			t.Fatalf("walked %d frames", n)
		}
		if (i+1)%(perPoll/perBlock) == 0 {
			tb.flush(sink, now)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)

	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap %d → %d bytes (%+d); table %d bytes; %d sink calls for %d packets, %d evictions",
		before.HeapAlloc, after.HeapAlloc, grew, len(tb.slots)*int(unsafe.Sizeof(slot{})), sink.calls, sink.total, tb.evicted)
	if grew > 256<<10 {
		t.Errorf("heap grew by %d bytes over %d sources", grew, total)
	}
	if sink.total != total {
		t.Errorf("reported %d packets, fed %d", sink.total, total)
	}
	if want := uint64(total / heavyIn); sink.watched != want {
		t.Errorf("heavy source: reported %d, sent %d", sink.watched, want)
	}
	if tb.evicted < total/2 {
		t.Errorf("%d evictions: the table was never full, the test proves nothing", tb.evicted)
	}
	if polls := uint64(total / perPoll); sink.watchedCalls > 2*polls {
		t.Errorf("heavy source reported in %d calls over %d polls: it lost its slot", sink.watchedCalls, polls)
	}
}

// BenchmarkCount is the sensor's own work per packet: walking a ring
// block, reading the packet and counting it, with a poll's flush after
// every 100,000 packets. Sources: one flooding source (the kernel-drop
// case), or a new random source per packet (a spoofed SYN flood).
func BenchmarkCount(b *testing.B) {
	for _, spoofed := range []bool{false, true} {
		b.Run(map[bool]string{false: "one-source", true: "random-sources"}[spoofed], func(b *testing.B) {
			const perBlock = 1000
			frames := make([]frameSpec, perBlock)
			for i := range frames {
				frames[i] = frameSpec{ip: ipv4("127.1.0.1", protoUDP, udpHeader(6969, 70), 0, 0)}
			}
			blk := appendBlock(nil, frames)
			var srcs []int
			walkBlock(blk, func(f []byte) {
				off := int(uintptr(unsafe.Pointer(&f[0]))-uintptr(unsafe.Pointer(&blk[0]))) + int(host.Uint16(f[frameNetOff:]))
				srcs = append(srcs, off+12)
			})
			tb := newTable(DefaultConfig().Sources)
			sink := &tally{}
			now := time.Now()
			visit := func(f []byte) {
				src, kind, n, _ := parseFrame(f, true)
				tb.add(src, kind, n, sink, now)
			}
			r := rand.New(rand.NewPCG(5, 6))
			b.ReportAllocs()
			blocks := 0
			for b.Loop() {
				if spoofed {
					b.StopTimer()
					for _, off := range srcs {
						binary.LittleEndian.PutUint32(blk[off:], r.Uint32())
					}
					b.StartTimer()
				}
				walkBlock(blk, visit)
				if blocks++; blocks%100 == 0 {
					tb.flush(sink, now)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBlock), "ns/packet")
		})
	}
}
