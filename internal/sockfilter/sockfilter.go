// Package sockfilter makes the kernel drop packets from a set of prefixes
// before they reach a socket, with a classic BPF socket filter
// (SO_ATTACH_FILTER, which needs no privilege). The guard keeps one on
// each frontend socket with the prefixes it bans and blocks.
//
// On a UDP socket (Datagrams) every datagram from a listed prefix is
// dropped before it is queued: a banned flood neither costs the process a
// read nor crowds legitimate datagrams out of the queue.
//
// On a TCP listener (SYNs) only connection attempts are dropped. A banned
// source refused once its connection is accepted still costs a handshake,
// a place in the accept queue ahead of everyone else's connections, an
// accept and a reset: under a connection flood the queue is where
// legitimate clients wait. Dropped at the SYN, it costs a socket lookup
// and the filter, and its client waits for a SYN retransmission (one
// second, then two, then four) instead of trying again at once. A packet
// without SYN passes after three instructions, so established
// connections, which inherit the listener's filter, pay almost nothing.
//
// A packet is compared with each prefix in turn, so the number of
// prefixes is bounded (MaxPrefixes) to keep that to about a microsecond.
package sockfilter

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
)

// MaxPrefixes is the most prefixes a filter holds, which bounds a SYN's
// walk through it to about two thousand instructions, a microsecond or
// so. Fewer fit when many are IPv6 (three instructions for each 32 bits of
// the prefix, against two for any IPv4 one).
const MaxPrefixes = 1024

// maxInstructions is the kernel's limit on a classic filter (BPF_MAXINSNS).
const maxInstructions = 4096

// fixedCost bounds the instructions a program has whatever its prefixes:
// the header, the returns, and two for each of the 33 IPv4 lengths.
const fixedCost = 16 + 2*33

// cost is the instructions p adds to a program, beside fixedCost.
func cost(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 2
	}
	return 3*((p.Bits()+31)/32) + 1
}

// ErrUnsupported is returned by Attach where the system has no socket
// filters for TCP (not Linux).
var ErrUnsupported = errors.New("sockfilter: socket filters are not supported on this system")

// skfNetOff is the kernel's SKF_NET_OFF: a load at it plus n reads byte n
// of the network (IP) header. A plain offset reads from the TCP header,
// where the kernel's data pointer is when it runs a TCP socket's filter.
const skfNetOff = 0xfff00000 // -0x100000 as a uint32

const (
	accept = 0xffffffff // keep the whole packet
	drop   = 0
)

// Kind says which packets from a listed prefix a filter drops.
type Kind uint8

const (
	// SYNs drops connection attempts (TCP segments with SYN set), for a
	// listening TCP socket.
	SYNs Kind = iota
	// Datagrams drops everything, for a UDP socket.
	Datagrams
)

// Choose returns the prefixes a filter holds, of those given: valid ones,
// masked and unmapped, without duplicates and without those inside
// another, and, if more than fit (MaxPrefixes, or fewer IPv6 ones), those
// listed first, so a caller lists the most important first; and how many
// were left out for want of room. The result is sorted by address, then
// length: below the limit it depends only on the set of prefixes given,
// so a caller can compare two results to know whether a filter changed.
func Choose(prefixes []netip.Prefix) (held []netip.Prefix, leftOut int) {
	return chosen(prefixes)
}

// Program returns a filter of kind dropping packets whose source lies in
// one of held (as Choose returns them: an invalid or IPv4-mapped prefix
// is not matched), and passing every other packet. IPv4 packets are
// matched against the IPv4 prefixes, IPv6 packets against the IPv6 ones.
// Held beyond what fits is left out.
func Program(kind Kind, held []netip.Prefix) []bpf.RawInstruction {
	return program(kind, held, skfNetOff)
}

// program is Program with the IP header read at netOff, so that a test can
// run it in x/net/bpf's VM, which has no SKF_NET_OFF, on a packet laid out
// as the TCP (or UDP) header followed by the IP header.
func program(kind Kind, held []netip.Prefix, netOff uint32) []bpf.RawInstruction {
	var v4, v6 []netip.Prefix
	total := fixedCost
	for _, p := range held {
		if !p.IsValid() || p.Addr().Is4In6() {
			continue
		}
		if total += cost(p); total > maxInstructions {
			break
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		} else {
			v6 = append(v6, p.Masked())
		}
	}
	var prog []bpf.Instruction
	if kind == SYNs {
		// The kernel runs a TCP socket's filter with the data at the TCP
		// header: byte 13 is the flags.
		prog = append(prog,
			bpf.LoadAbsolute{Off: 13, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x02, SkipTrue: 1},
			bpf.RetConstant{Val: accept}) // not a SYN
	}
	prog = append(prog,
		bpf.LoadAbsolute{Off: netOff, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4}, // IP version
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 1})
	v4prog := ipv4(v4, netOff)
	prog = append(prog, bpf.Jump{Skip: uint32(len(v4prog))})
	prog = append(prog, v4prog...)
	prog = append(prog, ipv6(v6, netOff)...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		// Every instruction above is valid by construction.
		panic("sockfilter: " + err.Error())
	}
	return raw
}

// ipv4 matches the IPv4 source against ps, grouped by length so that the
// address is masked once a group, and ends in a return.
func ipv4(ps []netip.Prefix, netOff uint32) []bpf.Instruction {
	if len(ps) == 0 {
		return []bpf.Instruction{bpf.RetConstant{Val: accept}}
	}
	byLen := slices.Clone(ps)
	slices.SortStableFunc(byLen, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: netOff + 12, Size: 4}, // source address
		bpf.TAX{},
	}
	bits := -1
	for _, p := range byLen {
		if p.Bits() != bits {
			bits = p.Bits()
			prog = append(prog, bpf.TXA{}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask32(bits)})
		}
		a := p.Addr().As4()
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(a[:]), SkipFalse: 1},
			bpf.RetConstant{Val: drop})
	}
	return append(prog, bpf.RetConstant{Val: accept})
}

// ipv6 matches an IPv6 source against ps, word by word, and ends in a
// return. It first checks that the packet is IPv6 at all.
func ipv6(ps []netip.Prefix, netOff uint32) []bpf.Instruction {
	prog := []bpf.Instruction{
		// The accumulator still holds the IP version.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 1},
		bpf.RetConstant{Val: accept},
	}
	for _, p := range ps {
		a := p.Addr().As16()
		var words []bpf.Instruction
		for w := 0; w*32 < p.Bits(); w++ {
			m := mask32(min(32, p.Bits()-w*32))
			words = append(words,
				bpf.LoadAbsolute{Off: netOff + 8 + uint32(4*w), Size: 4},
				bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: m},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(a[4*w:]) & m}) // SkipFalse set below
		}
		// A word that differs skips the rest of this prefix and its drop.
		for i := 2; i < len(words); i += 3 {
			j := words[i].(bpf.JumpIf)
			j.SkipFalse = uint8(len(words) - i) // to the instruction after the drop
			words[i] = j
		}
		prog = append(prog, words...)
		prog = append(prog, bpf.RetConstant{Val: drop})
	}
	return append(prog, bpf.RetConstant{Val: accept})
}

// mask32 is the mask of the first bits bits of a 32-bit word.
func mask32(bits int) uint32 {
	if bits <= 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// chosen returns the valid prefixes of ps, masked and unmapped, without
// duplicates and without those inside another, at most MaxPrefixes of
// them and no more than fit in maxInstructions (the first listed), sorted
// by address, then by length, and how many were left out for want of room.
func chosen(ps []netip.Prefix) ([]netip.Prefix, int) {
	rank := make(map[netip.Prefix]int, len(ps))
	out := make([]netip.Prefix, 0, len(ps))
	for i, p := range ps {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				continue // wider than the IPv4-mapped range: not an IPv4 prefix
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if _, dup := rank[p]; !dup {
			rank[p] = i
			out = append(out, p)
		}
	}
	canonical := func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	}
	slices.SortFunc(out, canonical)
	kept := out[:0]
	for _, p := range out {
		if n := len(kept); n > 0 && kept[n-1].Overlaps(p) {
			continue // sorted so: kept[n-1] is p or holds it
		}
		kept = append(kept, p)
	}
	total := fixedCost
	for _, p := range kept {
		total += cost(p)
	}
	if len(kept) > MaxPrefixes || total > maxInstructions {
		slices.SortFunc(kept, func(a, b netip.Prefix) int { return rank[a] - rank[b] })
		n, total := 0, fixedCost
		for n < len(kept) && n < MaxPrefixes && total+cost(kept[n]) <= maxInstructions {
			total += cost(kept[n])
			n++
		}
		leftOut := len(kept) - n
		kept = kept[:n]
		slices.SortFunc(kept, canonical)
		return kept, leftOut
	}
	return kept, 0
}
