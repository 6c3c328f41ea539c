package udptracker

import (
	"net"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// maxKernelBans bounds the socket filter: four instructions a prefix,
// under the kernel's limit of 4096.
const maxKernelBans = 1000

// skfNetOff is the kernel's SKF_NET_OFF (-0x100000, as a uint32): a load
// at this offset plus n reads byte n of the network header, although a UDP
// socket's filter otherwise starts at the UDP header.
const skfNetOff uint32 = 0xFFF00000

// banFilter compiles a classic BPF socket filter that drops IPv4 datagrams
// whose source is inside one of prefixes and accepts everything else
// (IPv6 sources included). The kernel runs it before queueing a datagram
// on the socket, so a banned flood costs the process nothing and cannot
// push legitimate datagrams out of the receive queue.
func banFilter(prefixes []netip.Prefix) ([]bpf.RawInstruction, error) {
	var v4 []netip.Prefix
	for _, p := range prefixes {
		if p.Addr().Is4() && len(v4) < maxKernelBans {
			v4 = append(v4, p.Masked())
		}
	}
	const accept, drop = 0xFFFFFFFF, 0
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: skfNetOff, Size: 1}, // version and header length
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 1},
		bpf.RetConstant{Val: accept},                   // not IPv4
		bpf.LoadAbsolute{Off: skfNetOff + 12, Size: 4}, // source address
		bpf.TAX{},
	}
	// Classic BPF jumps only 255 instructions ahead, so each prefix carries
	// its own drop.
	for _, p := range v4 {
		mask := uint32(0xFFFFFFFF) << (32 - p.Bits())
		if p.Bits() == 0 {
			mask = 0
		}
		a := p.Addr().As4()
		base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		prog = append(prog,
			bpf.TXA{},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: base, SkipTrue: 1},
			bpf.RetConstant{Val: drop},
		)
	}
	prog = append(prog, bpf.RetConstant{Val: accept})
	return bpf.Assemble(prog)
}

// setKernelBans replaces the socket filter of pc with one dropping
// prefixes (an empty list removes the filter).
func setKernelBans(pc *net.UDPConn, prefixes []netip.Prefix) error {
	raw, err := banFilter(prefixes)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	rc, err := pc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
	}); err != nil {
		return err
	}
	return serr
}

const haveKernelBans = true

func sameBans(a, b []netip.Prefix) bool { return slices.Equal(a, b) }
