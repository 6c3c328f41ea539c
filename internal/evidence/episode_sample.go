package evidence

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// hll estimates how many distinct 64-bit hashes it was given, in 256
// bytes (HyperLogLog with 256 registers: about 6.5% standard error, and
// nearly exact below a few dozen by linear counting).
type hll [1 << hllBits]uint8

func (h *hll) add(x uint64) {
	i := x >> (64 - hllBits)
	r := uint8(bits.LeadingZeros64(x<<hllBits|1<<(hllBits-1)) + 1)
	if r > h[i] {
		h[i] = r
	}
}

func (h *hll) estimate() uint64 {
	const m = float64(len(h))
	var sum float64
	zeros := 0
	for _, r := range h {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	if zeros == len(h) {
		return 0
	}
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros))
	}
	return uint64(math.Round(est))
}

// ClientName names the client a peer ID's first 8 bytes claim, with its
// version: "qBittorrent 4.5.2" for "-qB4520-". It reads the two common
// layouts, Azureus style ("-" two letters, four version characters, "-")
// and Mainline style (a letter or two, then numbers between dashes:
// "M7-4-0--", "A2-1-37-"), and returns "unknown" for anything else. The
// result is printable UTF-8, at most 40 bytes. It is a claim: any client
// can send any peer ID.
func ClientName(p [8]byte) string {
	if p[0] == '-' && p[7] == '-' {
		name, ok := azureusClients[string(p[1:3])]
		if !ok {
			return "unknown"
		}
		var parts []string
		for i, c := range p[3:7] {
			switch {
			case c >= '0' && c <= '9':
				parts = append(parts, strconv.Itoa(int(c-'0')))
				continue
			case c >= 'A' && c <= 'Z' && i < 3:
				parts = append(parts, strconv.Itoa(int(c-'A')+10))
				continue
			}
			break // a build letter, or not a version
		}
		for len(parts) > 2 && parts[len(parts)-1] == "0" {
			parts = parts[:len(parts)-1]
		}
		if len(parts) == 0 {
			return name
		}
		return name + " " + strings.Join(parts, ".")
	}
	// Mainline style: a letter and the version ("M7-4-0--"), or aria2's
	// "A2-" and the version.
	name, start := "", 1
	switch {
	case string(p[:3]) == "A2-":
		name, start = "aria2", 3
	default:
		name = mainlineClients[p[0]]
	}
	if name == "" {
		return "unknown"
	}
	var parts []string
	num := ""
	for _, c := range p[start:] {
		switch {
		case c >= '0' && c <= '9' && len(num) < 3:
			num += string(rune(c))
		case c == '-' && num != "":
			parts = append(parts, num)
			num = ""
		case c == '-':
			// trailing padding
		default:
			return "unknown"
		}
	}
	if num != "" {
		parts = append(parts, num)
	}
	if len(parts) == 0 {
		return name
	}
	return name + " " + strings.Join(parts, ".")
}

// peerIDText writes a peer ID prefix for a record: printable ASCII as is,
// other bytes as %XX.
func peerIDText(p [8]byte) string {
	var b strings.Builder
	for _, c := range p {
		if c >= 0x20 && c < 0x7f && c != '%' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)+strconv.FormatUint(uint64(c)&15, 16)))
		}
	}
	return b.String()
}

// azureusClients are the two-letter codes of Azureus-style peer IDs in
// common use (BEP 20 and the clients' own sources).
var azureusClients = map[string]string{
	"7T": "aTorrent", "AG": "Ares", "AZ": "Vuze", "BB": "BitBuddy", "BC": "BitComet",
	"BE": "baretorrent", "BF": "Bitflu", "BI": "BiglyBT", "BT": "BitTorrent",
	"CD": "Enhanced CTorrent", "CT": "CTorrent", "DE": "Deluge", "FD": "Free Download Manager",
	"FW": "FrostWire", "FX": "Freebox", "HL": "Halite", "KG": "KGet", "KT": "KTorrent",
	"LT": "libtorrent (rakshasa)", "lt": "libtorrent", "LW": "LimeWire", "MO": "MonoTorrent",
	"PI": "PicoTorrent", "qB": "qBittorrent", "QD": "QQDownload", "RT": "Retriever",
	"SD": "Xunlei", "SP": "BitSpirit", "ST": "SymTorrent", "SZ": "Shareaza", "TL": "Tribler",
	"TR": "Transmission", "TT": "TuoTu", "UM": "µTorrent for Mac", "UT": "µTorrent",
	"UW": "µTorrent Web", "VG": "Vagaa", "WD": "WebTorrent Desktop", "WW": "WebTorrent",
	"XL": "Xunlei", "XX": "Xtorrent", "ZT": "ZipTorrent",
}

// mainlineClients are the letters of Mainline-style peer IDs.
var mainlineClients = map[byte]string{'M': "Mainline", 'Q': "Queen Bee"}
