package sensor

import (
	"encoding/binary"
)

// The layout of a TPACKET_V3 ring (linux/if_packet.h), in the byte order
// of the host: a block starts with a struct tpacket_block_desc, whose
// struct tpacket_hdr_v1 counts the packets in it and points to the first;
// each packet starts with a struct tpacket3_hdr pointing to the next.
const (
	blockStatusOff   = 8  // tpacket_hdr_v1.block_status
	blockNumPktsOff  = 12 // tpacket_hdr_v1.num_pkts
	blockFirstOff    = 16 // tpacket_hdr_v1.offset_to_first_pkt
	blockHeaderBytes = 48 // tpacket_block_desc

	frameNextOff    = 0  // tpacket3_hdr.tp_next_offset
	frameSnapOff    = 12 // tp_snaplen: bytes copied, from the link header on
	frameLenOff     = 16 // tp_len: bytes the packet had
	frameMacOff     = 24 // tp_mac: link header, from the frame's start
	frameNetOff     = 26 // tp_net: network header, from the frame's start
	frameHeaderSize = 48 // sizeof(struct tpacket3_hdr)

	// vnetHdrBytes is the struct virtio_net_hdr the kernel writes right
	// before the link header (PACKET_VNET_HDR): flags, gso_type, hdr_len,
	// gso_size, csum_start, csum_offset.
	vnetHdrBytes  = 10
	vnetGSOUDPL4  = 5 // VIRTIO_NET_HDR_GSO_UDP_L4: datagrams of gso_size each
	vnetGSOTypeAt = 1
	vnetGSOSizeAt = 4

	// maxSegments bounds the datagrams one packet may stand for: a GSO
	// packet is at most 64 KiB, its datagrams at least a byte long.
	maxSegments = 1 << 16
)

var host = binary.NativeEndian

// walkBlock calls fn with each packet of a ring block in turn, cut to
// the packet's own bytes, and returns how many it visited and whether
// the block was well formed. The kernel wrote it, but nothing read from
// it may take a read outside blk.
func walkBlock(blk []byte, fn func(frame []byte)) (int, bool) {
	if len(blk) < blockHeaderBytes {
		return 0, false
	}
	num := host.Uint32(blk[blockNumPktsOff:])
	off := uint64(host.Uint32(blk[blockFirstOff:]))
	visited := 0
	for range num {
		if off < blockHeaderBytes || off+frameHeaderSize > uint64(len(blk)) {
			return visited, false
		}
		next := uint64(host.Uint32(blk[off+frameNextOff:]))
		end := uint64(len(blk))
		if next != 0 {
			if next < frameHeaderSize || off+next > end {
				return visited, false
			}
			end = off + next
		}
		fn(blk[off:end])
		visited++
		if next == 0 {
			return visited, visited == int(num)
		}
		off += next
	}
	return visited, true
}

// parseFrame reads one packet of the ring: its source (IPv4 as
// IPv4-mapped), what the filter accepted it as, and how many packets it
// stands for (more than one for a GSO super-packet of datagrams when
// vnet, the sockets' PACKET_VNET_HDR, is set). ok is false for anything
// that is not what the filters accept.
func parseFrame(f []byte, vnet bool) (src [16]byte, kind Kind, n uint64, ok bool) {
	if len(f) < frameHeaderSize {
		return src, 0, 0, false
	}
	snap := uint64(host.Uint32(f[frameSnapOff:]))
	length := uint64(host.Uint32(f[frameLenOff:]))
	mac := uint64(host.Uint16(f[frameMacOff:]))
	nh := uint64(host.Uint16(f[frameNetOff:]))
	if nh < mac || mac < frameHeaderSize || mac+snap > uint64(len(f)) || nh >= mac+snap {
		return src, 0, 0, false
	}
	ip := f[nh : mac+snap]
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return src, 0, 0, false
		}
		src[10], src[11] = 0xff, 0xff
		copy(src[12:], ip[12:16])
		switch ip[9] {
		case protoTCP:
			return src, SYN, 1, true
		case protoUDP:
		default:
			return src, 0, 0, false
		}
		n = 1
		if vnet && mac >= vnetHdrBytes+frameHeaderSize {
			v := f[mac-vnetHdrBytes : mac]
			size := uint64(host.Uint16(v[vnetGSOSizeAt:]))
			ihl := uint64(ip[0]&0x0F) * 4
			// What follows the network header, less the IP options and
			// the UDP header, is the datagrams' payload.
			if v[vnetGSOTypeAt]&0x7F == vnetGSOUDPL4 && size > 0 && length >= (nh-mac)+ihl+8 {
				payload := length - (nh - mac) - ihl - 8
				n = min(max((payload+size-1)/size, 1), maxSegments)
			}
		}
		return src, KernelDropped, n, true
	case 6:
		if len(ip) < 24 || ip[6] != protoTCP {
			return src, 0, 0, false
		}
		copy(src[:], ip[8:24])
		return src, SYN, 1, true
	}
	return src, 0, 0, false
}
