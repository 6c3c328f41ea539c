package limit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParsePrefix parses an address or a CIDR prefix as an operator writes it
// anywhere in warden: the blocklist, trusted proxies, bans and unbans, the
// load tool's source ranges. Having one parser means one set of rules:
//
//   - A bare address is the prefix of that one address: "192.0.2.7" is
//     192.0.2.7/32, "2001:db8::1" is 2001:db8::1/128.
//   - Host bits set ("10.0.0.1/8") are refused with the masked prefix as a
//     hint, rather than guessing between 10.0.0.0/8 and 10.0.0.1/32.
//   - An IPv4-mapped IPv6 address or prefix ("::ffff:192.0.2.0/120") is
//     refused with its IPv4 form as a hint: sources are compared unmapped,
//     so it would never match what the operator meant.
//   - A zone ("fe80::1%eth0") is refused: it names an interface, not a
//     network.
//   - Space around the text is refused, not trimmed: a format that allows
//     it (a blocklist line) trims it as part of reading the format.
//
// The error, for any other text too, quotes s and says what is wrong.
// ParsePrefix does not allocate when s is valid.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.TrimSpace(s) != s {
		return netip.Prefix{}, &prefixError{s, "has space around it"}
	}
	addr, bits, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, &prefixError{s, "is not an address or CIDR prefix"}
	}
	if a.Zone() != "" {
		return netip.Prefix{}, &prefixError{s, "has a zone, which names an interface, not a network"}
	}
	p := netip.PrefixFrom(a, a.BitLen())
	if hasBits {
		n, ok := prefixLen(bits)
		if !ok || n > a.BitLen() {
			return netip.Prefix{}, &prefixError{s, fmt.Sprintf("has a bad prefix length: must be 0-%d", a.BitLen())}
		}
		p = netip.PrefixFrom(a, n)
	}
	if a.Is4In6() && p.Bits() >= 96 {
		v4 := netip.PrefixFrom(a.Unmap(), p.Bits()-96).String()
		if !hasBits {
			v4 = a.Unmap().String()
		}
		return netip.Prefix{}, &prefixError{s, "is IPv4-mapped, which no source is; write the IPv4 form " + v4}
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, &prefixError{s, "has host bits set; did you mean " + m.String() + "?"}
	}
	return p, nil
}

// prefixLen parses a prefix length as netip does: decimal digits, no sign,
// no leading zero.
func prefixLen(s string) (int, bool) {
	if s == "" || len(s) > 3 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// prefixError is text ParsePrefix refused.
type prefixError struct {
	in  string
	msg string // what is wrong, after the quoted input
}

func (e *prefixError) Error() string { return strconv.Quote(e.in) + " " + e.msg }
