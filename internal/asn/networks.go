package asn

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"warden/internal/limit"
)

// Limits of a networks file: a line longer than maxNetworksLine bytes or
// more than maxNetworks entries is refused, so a wrong file (a log, a
// disk image) costs bounded memory and a clear error.
const (
	maxNetworksLine = 4096
	maxNetworks     = 1 << 20
)

// NetworksError reports a line of a networks file that cannot be used.
type NetworksError struct {
	Path  string // the file, when known
	Line  int    // 1-based
	Field string // "CIDR", "ASN", "ORG", "COUNTRY", "ABUSE_EMAIL", or "" for the line as a whole
	Err   error
}

func (e *NetworksError) Error() string {
	var b strings.Builder
	b.WriteString("networks file")
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	b.WriteString(": line " + strconv.Itoa(e.Line) + ": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *NetworksError) Unwrap() error { return e.Err }

// Network is one line of a networks file.
type Network struct {
	Prefix     netip.Prefix
	ASN        uint32 // 0 when not given
	Org        string
	Country    string // two letters A-Z, or ""
	AbuseEmail string // a bare address (abuse@example.net), or ""
}

// Networks is the operator's own list of networks, immutable once
// parsed. Lookup finds the most specific network holding an address.
type Networks struct {
	list []Network
	v4   []span[uint32]
	v6   []span[u128]
}

type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// span is a range of addresses whose most specific network is list[i].
// Spans are disjoint and sorted.
type span[T any] struct {
	lo, hi T
	i      int32
}

// ParseNetworks reads a networks file: one network per line, five fields
// separated by tabs,
//
//	CIDR	ASN	ORG	COUNTRY	ABUSE_EMAIL
//	192.0.2.0/24	AS64500	Example Transit	NL	abuse@example.net
//
// CIDR follows limit.ParsePrefix (an address alone is a /32 or /128; host
// bits set or an IPv4-mapped prefix are refused). ASN is decimal, with or
// without "AS". COUNTRY is two letters. ORG must be given; ASN, COUNTRY
// and ABUSE_EMAIL may be "-" or empty. Space around a field is ignored;
// blank lines and lines starting with "#" are skipped. Networks may nest
// (the most specific wins) but not repeat. The first line that breaks a
// rule is a *NetworksError naming its line and field.
func ParseNetworks(r io.Reader) (*Networks, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxNetworksLine)
	n := &Networks{}
	lineOf := map[netip.Prefix]int{}
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a byte order mark
		}
		text = bytes.TrimRight(text, "\r")
		if t := bytes.TrimSpace(text); len(t) == 0 || t[0] == '#' {
			continue
		}
		nw, field, err := parseNetworkLine(string(text))
		if err != nil {
			return nil, &NetworksError{Line: line, Field: field, Err: err}
		}
		if first, dup := lineOf[nw.Prefix]; dup {
			return nil, &NetworksError{Line: line, Field: "CIDR", Err: fmt.Errorf("%s is already on line %d", nw.Prefix, first)}
		}
		if len(n.list) == maxNetworks {
			return nil, &NetworksError{Line: line, Err: fmt.Errorf("more than %d networks", maxNetworks)}
		}
		lineOf[nw.Prefix] = line
		n.list = append(n.list, nw)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &NetworksError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", maxNetworksLine)}
		}
		return nil, fmt.Errorf("networks file: read: %w", err)
	}
	n.index()
	return n, nil
}

// parseNetworkLine parses one non-blank, non-comment line; on error it
// names the field at fault.
func parseNetworkLine(text string) (Network, string, error) {
	fields := strings.Split(text, "\t")
	if len(fields) != 5 {
		return Network{}, "", fmt.Errorf("has %d tab-separated fields, want 5: CIDR ASN ORG COUNTRY ABUSE_EMAIL", len(fields))
	}
	for i, f := range fields {
		fields[i] = strings.TrimSpace(f)
	}
	var nw Network
	var err error
	if nw.Prefix, err = limit.ParsePrefix(fields[0]); err != nil {
		return Network{}, "CIDR", err
	}
	if nw.ASN, err = parseASN(fields[1]); err != nil {
		return Network{}, "ASN", err
	}
	if nw.Org = fields[2]; nw.Org == "" || nw.Org == "-" {
		return Network{}, "ORG", errors.New("is empty: name the network's owner")
	}
	if !printable(nw.Org) {
		return Network{}, "ORG", fmt.Errorf("%q has control characters", nw.Org)
	}
	if nw.Country, err = parseCountry(fields[3]); err != nil {
		return Network{}, "COUNTRY", err
	}
	if nw.AbuseEmail, err = parseEmail(fields[4]); err != nil {
		return Network{}, "ABUSE_EMAIL", err
	}
	return nw, "", nil
}

func parseASN(s string) (uint32, error) {
	if s == "" || s == "-" {
		return 0, nil
	}
	d := s
	if len(d) > 2 && strings.EqualFold(d[:2], "AS") {
		d = d[2:]
	}
	v, err := strconv.ParseUint(d, 10, 32)
	if err != nil || d[0] == '+' || len(d) > 1 && d[0] == '0' {
		return 0, fmt.Errorf("%q is not an AS number (0-4294967295, optionally after \"AS\")", s)
	}
	return uint32(v), nil
}

func parseCountry(s string) (string, error) {
	if s == "" || s == "-" {
		return "", nil
	}
	if len(s) != 2 || !isLetter(s[0]) || !isLetter(s[1]) {
		return "", fmt.Errorf("%q is not a two-letter country code", s)
	}
	return strings.ToUpper(s), nil
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

func parseEmail(s string) (string, error) {
	if s == "" || s == "-" {
		return "", nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", fmt.Errorf("%q is not a bare mail address (abuse@example.net)", s)
	}
	return s, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Lookup returns the most specific network holding a (IPv4-mapped
// addresses are looked up as IPv4); the *Network points into n and must
// not be changed. It is a binary search: it does not allocate, and is
// safe for concurrent use. The nil *Networks holds nothing.
func (n *Networks) Lookup(a netip.Addr) (*Network, bool) {
	if n == nil {
		return nil, false
	}
	a = a.Unmap()
	var i int32
	var ok bool
	if a.Is4() {
		b := a.As4()
		i, ok = find(n.v4, binary.BigEndian.Uint32(b[:]), cmp.Compare[uint32])
	} else {
		i, ok = find(n.v6, to128(a), u128.cmp)
	}
	if !ok {
		return nil, false
	}
	return &n.list[i], true
}

// Len returns the number of networks.
func (n *Networks) Len() int {
	if n == nil {
		return 0
	}
	return len(n.list)
}

func find[T any](s []span[T], v T, c func(a, b T) int) (int32, bool) {
	lo, hi := 0, len(s) // first span with lo > v
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c(s[m].lo, v) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || c(v, s[lo-1].hi) > 0 {
		return 0, false
	}
	return s[lo-1].i, true
}

func to128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// index flattens the nested networks into disjoint spans, each naming
// its most specific network, so that Lookup is one binary search.
func (n *Networks) index() {
	var v4, v6 []span[u128]
	for i, nw := range n.list {
		lo := to128(nw.Prefix.Addr())
		bits := nw.Prefix.Bits()
		if nw.Prefix.Addr().Is4() {
			lo = u128{0, lo.lo & 0xffffffff}
			bits += 96
		}
		hi := lo
		if bits < 64 {
			hi = u128{lo.hi | ^uint64(0)>>bits, ^uint64(0)}
		} else if bits < 128 {
			hi.lo |= ^uint64(0) >> (bits - 64)
		}
		r := span[u128]{lo, hi, int32(i)}
		if nw.Prefix.Addr().Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	for _, s := range flatten(v4) {
		n.v4 = append(n.v4, span[uint32]{uint32(s.lo.lo), uint32(s.hi.lo), s.i})
	}
	n.v6 = flatten(v6)
}

// flatten turns nested or disjoint ranges (CIDR prefixes never overlap
// otherwise) into sorted disjoint spans, each labelled with the
// innermost range holding it.
func flatten(rs []span[u128]) []span[u128] {
	slices.SortFunc(rs, func(a, b span[u128]) int {
		if c := a.lo.cmp(b.lo); c != 0 {
			return c
		}
		return b.hi.cmp(a.hi) // the larger first
	})
	var out []span[u128]
	var stack []span[u128]
	var cur u128 // the first address not yet given to a span
	done := false
	emit := func(lo, hi u128, i int32) {
		if !done && lo.cmp(hi) <= 0 {
			out = append(out, span[u128]{lo, hi, i})
		}
	}
	// pop closes the innermost open range: what is left of it belongs
	// to it.
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !done && cur.cmp(top.hi) <= 0 {
			emit(cur, top.hi, top.i)
		}
		if top.hi == (u128{^uint64(0), ^uint64(0)}) {
			done = true // nothing lies above; cur would wrap
		} else if top.hi.cmp(cur) >= 0 {
			cur = top.hi.inc()
		}
	}
	for _, r := range rs {
		for len(stack) > 0 && stack[len(stack)-1].hi.cmp(r.lo) < 0 {
			pop()
		}
		if len(stack) > 0 && cur.cmp(r.lo) < 0 {
			emit(cur, r.lo.dec(), stack[len(stack)-1].i)
		}
		cur = r.lo
		stack = append(stack, r)
	}
	for len(stack) > 0 {
		pop()
	}
	return out
}

func (a u128) inc() u128 {
	if a.lo == ^uint64(0) {
		return u128{a.hi + 1, 0}
	}
	return u128{a.hi, a.lo + 1}
}

func (a u128) dec() u128 {
	if a.lo == 0 {
		return u128{a.hi - 1, ^uint64(0)}
	}
	return u128{a.hi, a.lo - 1}
}
