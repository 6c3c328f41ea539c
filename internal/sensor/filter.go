package sensor

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
)

// skfNetOff is the kernel's SKF_NET_OFF (-0x100000 as a uint32): a load
// at this offset plus n reads byte n of the network header, whatever the
// link header before it (14 bytes on Ethernet and loopback, none on a
// tunnel).
const skfNetOff uint32 = 0xFFF00000

// snapLen is how much of an accepted packet is copied to the ring, from
// the link header on: enough for the IPv6 source address behind any link
// header up to 40 bytes (Ethernet takes 14, with a VLAN tag 18).
const snapLen = 64

// IP protocol numbers and TCP flags the filters test.
const (
	protoTCP = 6
	protoUDP = 17
	tcpSYN   = 0x02
	tcpACK   = 0x10
)

// selection is what the filters accept.
type selection struct {
	tcp, udp []uint16
	banned   []netip.Prefix // IPv4, masked, sorted by length then address
}

// newSelection checks and normalizes ports and prefixes: IPv6 prefixes
// are left out (the UDP frontend bans only IPv4 in the kernel).
func newSelection(p Ports, banned []netip.Prefix) (selection, error) {
	var s selection
	if len(p.TCP) > MaxPorts || len(p.UDP) > MaxPorts {
		return s, fmt.Errorf("sensor: %d TCP and %d UDP ports, at most %d each", len(p.TCP), len(p.UDP), MaxPorts)
	}
	norm := func(ports []uint16) ([]uint16, error) {
		out := slices.Clone(ports)
		slices.Sort(out)
		if len(out) > 0 && out[0] == 0 {
			return nil, fmt.Errorf("sensor: port 0")
		}
		return slices.Compact(out), nil
	}
	var err error
	if s.tcp, err = norm(p.TCP); err != nil {
		return s, err
	}
	if s.udp, err = norm(p.UDP); err != nil {
		return s, err
	}
	for _, b := range banned {
		if b.IsValid() && b.Addr().Is4() {
			s.banned = append(s.banned, b.Masked())
		}
	}
	if len(s.banned) > MaxBanned {
		return s, fmt.Errorf("sensor: %d banned prefixes, at most %d", len(s.banned), MaxBanned)
	}
	slices.SortFunc(s.banned, func(a, b netip.Prefix) int {
		if c := cmp.Compare(b.Bits(), a.Bits()); c != 0 {
			return c
		}
		return a.Addr().Compare(b.Addr())
	})
	s.banned = slices.Compact(s.banned)
	return s, nil
}

// filter compiles the classic BPF program of the IPv4 (v6 false) or IPv6
// socket. net is where loads find the network header: skfNetOff in the
// kernel, 0 for x/net/bpf's VM run on bare IP packets in tests.
//
// Classic BPF's conditional jumps reach 255 instructions, so each port
// and prefix test carries its own return; the program stays under the
// kernel's 4096 instructions with MaxBanned prefixes (2 per prefix, 2 per
// prefix length).
func (s selection) filter(v6 bool, net uint32) ([]bpf.RawInstruction, error) {
	const reject, accept = 0, snapLen
	var p []bpf.Instruction
	// synTo appends the test of the TCP header at base (past X if
	// indirect): a SYN without ACK to a port of s.tcp is accepted,
	// anything else rejected.
	synTo := func(base uint32, indirect bool) {
		load := func(off uint32, size int) bpf.Instruction {
			if indirect {
				return bpf.LoadIndirect{Off: net + base + off, Size: size}
			}
			return bpf.LoadAbsolute{Off: net + base + off, Size: size}
		}
		p = append(p,
			load(13, 1),
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: tcpSYN | tcpACK},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: tcpSYN, SkipTrue: 1},
			bpf.RetConstant{Val: reject},
			load(2, 2), // destination port
		)
		for _, port := range s.tcp {
			p = append(p,
				bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(port), SkipTrue: 1},
				bpf.RetConstant{Val: accept})
		}
		p = append(p, bpf.RetConstant{Val: reject})
	}

	version := uint32(4)
	if v6 {
		version = 6
	}
	p = append(p,
		bpf.LoadAbsolute{Off: net, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: version, SkipTrue: 1},
		bpf.RetConstant{Val: reject},
	)
	if v6 {
		// Only a TCP header right behind the fixed header: a SYN behind
		// extension headers is not counted.
		if len(s.tcp) == 0 {
			return bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: reject}})
		}
		p = append(p,
			bpf.LoadAbsolute{Off: net + 6, Size: 1}, // next header
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoTCP, SkipTrue: 1},
			bpf.RetConstant{Val: reject},
		)
		synTo(40, false)
		return bpf.Assemble(p)
	}

	p = append(p,
		bpf.LoadAbsolute{Off: net + 6, Size: 2}, // flags and fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1FFF, SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: reject}, // a later fragment: no transport header
		bpf.LoadMemShift{Off: net},   // X = header length
		bpf.LoadAbsolute{Off: net + 9, Size: 1},
	)
	// Branch on the protocol; the sections are built first so that the
	// unconditional jumps (32-bit reach) know their lengths.
	head := p
	p = nil
	if len(s.tcp) > 0 {
		synTo(0, true)
	} else {
		p = append(p, bpf.RetConstant{Val: reject})
	}
	tcp := p
	p = nil
	if len(s.udp) > 0 && len(s.banned) > 0 {
		p = append(p, bpf.LoadIndirect{Off: net + 2, Size: 2})
		for i, port := range s.udp {
			// On a match, jump over the other ports and the reject.
			p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: uint8(len(s.udp) - i)})
		}
		p = append(p,
			bpf.RetConstant{Val: reject},
			bpf.LoadAbsolute{Off: net + 12, Size: 4}, // source address
			bpf.TAX{},
		)
		bits := -1
		for _, b := range s.banned {
			if b.Bits() != bits {
				bits = b.Bits()
				mask := uint32(0)
				if bits > 0 {
					mask = ^uint32(0) << (32 - bits)
				}
				p = append(p, bpf.TXA{}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
			}
			a := b.Addr().As4()
			base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
			p = append(p,
				bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: base, SkipTrue: 1},
				bpf.RetConstant{Val: accept})
		}
	}
	p = append(p, bpf.RetConstant{Val: reject})
	udp := p

	p = append(head,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoTCP, SkipFalse: 1},
		bpf.Jump{Skip: 3}, // to tcp
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoUDP, SkipTrue: 1},
		bpf.RetConstant{Val: reject},
		bpf.Jump{Skip: uint32(len(tcp))}, // to udp
	)
	p = append(p, tcp...)
	p = append(p, udp...)
	return bpf.Assemble(p)
}
