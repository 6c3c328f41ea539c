package sockfilter

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// testNetOff is where the test packets carry their IP header: after a
// 20-byte TCP header, so that x/net/bpf's VM can run the program.
const testNetOff = 20

// packet lays out a TCP header with flags followed by an IP header from
// src, as program(…, testNetOff) reads it.
func packet(src netip.Addr, flags byte) []byte {
	tcp := make([]byte, 20)
	tcp[12] = 5 << 4
	tcp[13] = flags
	if src.Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		a := src.As4()
		copy(ip[12:], a[:])
		return append(tcp, ip...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	a := src.As16()
	copy(ip[8:], a[:])
	return append(tcp, ip...)
}

const (
	syn    = 0x02
	ack    = 0x10
	synAck = syn | ack
	psh    = 0x08
)

// build is Choose and program for the test layout.
func build(kind Kind, ps []netip.Prefix) (prog []bpf.RawInstruction, held, leftOut int) {
	h, leftOut := Choose(ps)
	return program(kind, h, testNetOff), len(h), leftOut
}

// dropped runs prog on a packet from src with flags and reports whether
// it dropped it.
func dropped(t testing.TB, prog []bpf.RawInstruction, src netip.Addr, flags byte) bool {
	t.Helper()
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatalf("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("the VM refuses the program: %v", err)
	}
	n, err := vm.Run(packet(src, flags))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return n == 0
}

func TestProgram(t *testing.T) {
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	tests := []struct {
		name     string
		prefixes []netip.Prefix
		src      string
		flags    byte
		drop     bool
	}{
		{"no prefixes", nil, "192.0.2.1", syn, false},
		{"banned address, SYN", pfx("192.0.2.1/32"), "192.0.2.1", syn, true},
		{"banned address, next one", pfx("192.0.2.1/32"), "192.0.2.2", syn, false},
		{"banned address, ACK", pfx("192.0.2.1/32"), "192.0.2.1", ack, false},
		{"banned address, data", pfx("192.0.2.1/32"), "192.0.2.1", ack | psh, false},
		{"banned address, SYN-ACK", pfx("192.0.2.1/32"), "192.0.2.1", synAck, true},
		{"banned /24, inside", pfx("198.51.100.0/24"), "198.51.100.77", syn, true},
		{"banned /24, outside", pfx("198.51.100.0/24"), "198.51.101.77", syn, false},
		{"host bits ignored", pfx("198.51.100.9/24"), "198.51.100.200", syn, true},
		{"two lengths", pfx("203.0.113.5/32", "198.51.100.0/24"), "203.0.113.5", syn, true},
		{"two lengths, second", pfx("203.0.113.5/32", "198.51.100.0/24"), "198.51.100.1", syn, true},
		{"two lengths, neither", pfx("203.0.113.5/32", "198.51.100.0/24"), "203.0.113.6", syn, false},
		{"IPv4-mapped prefix", pfx("::ffff:192.0.2.0/120"), "192.0.2.9", syn, true},
		{"IPv4 prefix, IPv6 packet", pfx("192.0.2.0/24"), "2001:db8::1", syn, false},
		{"IPv6 /64", pfx("2001:db8:1:2::/64"), "2001:db8:1:2:aaaa::1", syn, true},
		{"IPv6 /64, outside", pfx("2001:db8:1:2::/64"), "2001:db8:1:3::1", syn, false},
		{"IPv6 /48", pfx("2001:db8:7::/48"), "2001:db8:7:ffff::1", syn, true},
		{"IPv6 /48, outside", pfx("2001:db8:7::/48"), "2001:db8:8::1", syn, false},
		{"IPv6 /128", pfx("2001:db8::5/128"), "2001:db8::5", syn, true},
		{"IPv6 /128, next", pfx("2001:db8::5/128"), "2001:db8::6", syn, false},
		{"IPv6 /128, ACK", pfx("2001:db8::5/128"), "2001:db8::5", ack, false},
		{"IPv6 prefix, IPv4 packet", pfx("2001:db8::/32"), "192.0.2.1", syn, false},
		{"invalid prefix skipped", []netip.Prefix{{}}, "192.0.2.1", syn, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, _, _ := build(SYNs, tt.prefixes)
			if got := dropped(t, prog, netip.MustParseAddr(tt.src), tt.flags); got != tt.drop {
				t.Errorf("%v: packet from %s, flags %#x: dropped %v, want %v", tt.prefixes, tt.src, tt.flags, got, tt.drop)
			}
		})
	}
}

// TestDatagrams checks a filter for a UDP socket: every packet from a
// listed prefix is dropped, whatever its flags byte holds.
func TestDatagrams(t *testing.T) {
	ps := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}
	prog, _, _ := build(Datagrams, ps)
	for _, tt := range []struct {
		src   string
		flags byte
		drop  bool
	}{
		{"192.0.2.7", 0, true},
		{"192.0.2.7", syn, true},
		{"192.0.2.7", ack, true},
		{"192.0.3.7", 0, false},
		{"2001:db8::9", 0, true},
		{"2001:db8:0:1::9", 0, false},
	} {
		if got := dropped(t, prog, netip.MustParseAddr(tt.src), tt.flags); got != tt.drop {
			t.Errorf("datagram from %s (byte 13 = %#x): dropped %v, want %v", tt.src, tt.flags, got, tt.drop)
		}
	}
}

// TestProgramMatchesContains checks the program against netip's own
// Contains over random sets of prefixes and sources near them.
func TestProgramMatchesContains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		ps := randomPrefixes(r, 1+r.IntN(200))
		prog, n, _ := build(SYNs, ps)
		if n > len(ps) {
			t.Fatalf("round %d: holds %d of %d prefixes", round, n, len(ps))
		}
		for range 200 {
			src := near(r, ps)
			want := false
			for _, p := range ps {
				want = want || p.Contains(src)
			}
			if got := dropped(t, prog, src, syn); got != want {
				t.Fatalf("round %d: SYN from %s: dropped %v, want %v (prefixes %v)", round, src, got, want, ps)
			}
		}
	}
}

func randomPrefixes(r *rand.Rand, n int) []netip.Prefix {
	ps := make([]netip.Prefix, n)
	for i := range ps {
		if r.IntN(3) > 0 {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], 0x0a000000|r.Uint32()&0xffff)
			ps[i] = netip.PrefixFrom(netip.AddrFrom4(a), []int{16, 24, 28, 32}[r.IntN(4)]).Masked()
		} else {
			var a [16]byte
			copy(a[:], []byte{0x20, 0x01, 0x0d, 0xb8})
			a[5], a[7], a[15] = byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(4))
			ps[i] = netip.PrefixFrom(netip.AddrFrom16(a), []int{40, 48, 56, 64, 100, 128}[r.IntN(6)]).Masked()
		}
	}
	return ps
}

// near returns an address in or just beside one of ps.
func near(r *rand.Rand, ps []netip.Prefix) netip.Addr {
	a := ps[r.IntN(len(ps))].Addr()
	for range r.IntN(3) {
		if r.IntN(2) == 0 {
			a = a.Next()
		} else {
			a = a.Prev()
		}
	}
	if !a.IsValid() {
		a = ps[0].Addr()
	}
	return a
}

func TestProgramBounds(t *testing.T) {
	var ps []netip.Prefix
	for i := range 3 * MaxPrefixes {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4(a), 32))
	}
	for i := range MaxPrefixes {
		var a [16]byte
		a[0], a[1] = 0x20, 0x01
		binary.BigEndian.PutUint32(a[4:], uint32(i))
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), 64))
	}
	prog, n, leftOut := build(SYNs, ps)
	if n != MaxPrefixes || leftOut != len(ps)-MaxPrefixes {
		t.Fatalf("holds %d prefixes and left out %d, want MaxPrefixes (%d) and the other %d", n, leftOut, MaxPrefixes, len(ps)-MaxPrefixes)
	}
	if len(prog) > maxInstructions {
		t.Fatalf("%d instructions, more than the kernel takes (%d)", len(prog), maxInstructions)
	}
	// The first listed are kept: 10.0.0.0 is in, the last IPv4 one and
	// every IPv6 one are out.
	if !dropped(t, prog, netip.MustParseAddr("10.0.0.0"), syn) {
		t.Errorf("the first prefix listed was left out")
	}
	if dropped(t, prog, netip.MustParseAddr("10.0.11.255"), syn) {
		t.Errorf("a prefix listed after MaxPrefixes others is in the filter")
	}
	// The worst program: every prefix IPv6 /128, four words each.
	ps = ps[:0]
	for i := range MaxPrefixes {
		var a [16]byte
		a[0], a[1] = 0x20, 0x01
		binary.BigEndian.PutUint32(a[12:], uint32(i))
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), 128))
	}
	prog, n, _ = build(SYNs, ps)
	if len(prog) > maxInstructions {
		t.Fatalf("%d IPv6 /128s: %d instructions, more than the kernel takes (%d)", MaxPrefixes, len(prog), maxInstructions)
	}
	if n < 300 || n >= MaxPrefixes {
		t.Fatalf("%d IPv6 /128s: holds %d, want as many as fit (about 300)", MaxPrefixes, n)
	}
	if !dropped(t, prog, ps[0].Addr(), syn) || dropped(t, prog, ps[n].Addr(), syn) {
		t.Errorf("IPv6 /128s: the first listed are not the ones kept")
	}
}

func TestProgramCanonical(t *testing.T) {
	a := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/48")}
	b := []netip.Prefix{a[3], a[2], a[0]} // without the /32 inside 10/8
	ha, _ := Choose(a)
	hb, _ := Choose(b)
	pa, pb := Program(SYNs, ha), Program(SYNs, hb)
	if na, nb := len(ha), len(hb); na != 3 || nb != 3 {
		t.Fatalf("held %d and %d prefixes, want 3 and 3 (a prefix inside another is left out)", na, nb)
	}
	if fmt.Sprint(pa) != fmt.Sprint(pb) {
		t.Fatalf("the same set in another order made another program")
	}
}

// FuzzProgram reads prefixes and a source from the input and checks that
// the program drops a SYN from the source exactly when a prefix the
// filter holds contains it, passes a packet without SYN, and fits the
// kernel.
func FuzzProgram(f *testing.F) {
	f.Add([]byte{4, 24, 192, 0, 2, 0, 4, 0, 192, 0, 2, 9})
	f.Add([]byte{6, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		// Each item: a family byte (even: IPv4), a length byte, then the
		// address. The last item is the source.
		var items []netip.Prefix
		for len(in) >= 2 {
			n, bits := 4, int(in[1])%33
			if in[0]%2 == 1 {
				n, bits = 16, int(in[1])%129
			}
			if len(in) < 2+n {
				break
			}
			a, _ := netip.AddrFromSlice(in[2 : 2+n])
			items = append(items, netip.PrefixFrom(a, bits))
			in = in[2+n:]
		}
		if len(items) < 1 {
			return
		}
		src := items[len(items)-1].Addr()
		held, leftOut := Choose(items[:len(items)-1])
		prog := program(SYNs, held, testNetOff)
		if len(prog) > maxInstructions {
			t.Fatalf("%d instructions, more than the kernel takes", len(prog))
		}
		if len(held)+leftOut > len(items)-1 {
			t.Fatalf("holds %d and left out %d of %d prefixes", len(held), leftOut, len(items)-1)
		}
		want := false
		for _, p := range held {
			want = want || p.Contains(src)
		}
		if got := dropped(t, prog, src, syn); got != want {
			t.Fatalf("SYN from %s: dropped %v, want %v (held %v)", src, got, want, held)
		}
		if dropped(t, prog, src, ack) {
			t.Fatalf("a packet without SYN from %s was dropped", src)
		}
	})
}
