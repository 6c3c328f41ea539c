package limit

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Blocklist is a static set of CIDR prefixes whose sources are never
// served. It is immutable, so one value can be shared by any number of
// goroutines; to change it, parse a new one and swap a pointer (WatchFile
// does the parsing). The nil *Blocklist contains nothing.
type Blocklist struct {
	v4       []span4        // sorted by lo, disjoint and not adjacent
	v6       []span6        // same
	prefixes []netip.Prefix // as parsed: masked, sorted, duplicates removed
}

type span4 struct{ lo, hi uint32 }

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

type span6 struct{ lo, hi u128 }

// maxBlocklistLine is the longest line ParseBlocklist reads.
const maxBlocklistLine = 4096

// BlocklistError reports a line of a blocklist that is not a prefix or an
// address, or a line too long to read.
type BlocklistError struct {
	Path string // the file, when known
	Line int    // 1-based
	Text string // the line, without comment and surrounding space
	Err  error
}

func (e *BlocklistError) Error() string {
	var b strings.Builder
	b.WriteString("blocklist")
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	b.WriteString(": line " + strconv.Itoa(e.Line) + ": ")
	b.WriteString(e.Err.Error()) // quotes Text when there is one
	return b.String()
}

func (e *BlocklistError) Unwrap() error { return e.Err }

// ParseBlocklist reads a blocklist: one CIDR prefix ("192.0.2.0/24",
// "2001:db8::/32") or address (a /32 or /128) per line, by the rules of
// ParsePrefix; "#" starts a comment, space around an entry is ignored,
// and blank lines are skipped. The first line that is anything else
// (host bits set, an IPv4-mapped prefix, two entries) is a
// *BlocklistError naming it; a line longer than 4096 bytes is one too.
func ParseBlocklist(r io.Reader) (*Blocklist, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxBlocklistLine)
	var ps []netip.Prefix
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		p, err := ParsePrefix(text)
		if err != nil {
			return nil, &BlocklistError{Line: line, Text: text, Err: err}
		}
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &BlocklistError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", maxBlocklistLine)}
		}
		return nil, fmt.Errorf("blocklist: read: %w", err)
	}
	return newBlocklist(ps), nil
}

func newBlocklist(ps []netip.Prefix) *Blocklist {
	slices.SortFunc(ps, netip.Prefix.Compare)
	ps = slices.Compact(ps)
	b := &Blocklist{prefixes: slices.Clip(ps)}
	for _, p := range ps {
		if p.Addr().Is4() {
			lo, hi := range4(p)
			b.v4 = append(b.v4, span4{lo, hi})
		} else {
			lo, hi := range6(p)
			b.v6 = append(b.v6, span6{lo, hi})
		}
	}
	slices.SortFunc(b.v4, func(x, y span4) int { return cmp.Compare(x.lo, y.lo) })
	slices.SortFunc(b.v6, func(x, y span6) int {
		if c := cmp.Compare(x.lo.hi, y.lo.hi); c != 0 {
			return c
		}
		return cmp.Compare(x.lo.lo, y.lo.lo)
	})
	b.v4 = merge4(b.v4)
	b.v6 = merge6(b.v6)
	return b
}

func range4(p netip.Prefix) (lo, hi uint32) {
	b := p.Addr().As4()
	lo = binary.BigEndian.Uint32(b[:])
	if p.Bits() == 0 {
		return 0, ^uint32(0)
	}
	return lo, lo | ^uint32(0)>>p.Bits()
}

func range6(p netip.Prefix) (lo, hi u128) {
	b := p.Addr().As16()
	lo = u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	mhi, mlo := mask128(p.Bits())
	return lo, u128{lo.hi | ^mhi, lo.lo | ^mlo}
}

// merge4 joins overlapping and adjacent spans of s, sorted by lo, in place.
func merge4(s []span4) []span4 {
	out := s[:0]
	for _, x := range s {
		if n := len(out); n > 0 && (x.lo <= out[n-1].hi || out[n-1].hi != ^uint32(0) && x.lo == out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return slices.Clip(out)
}

func merge6(s []span6) []span6 {
	out := s[:0]
	for _, x := range s {
		if n := len(out); n > 0 && (!out[n-1].hi.less(x.lo) || x.lo == out[n-1].hi.inc()) {
			if out[n-1].hi.less(x.hi) {
				out[n-1].hi = x.hi
			}
			continue
		}
		out = append(out, x)
	}
	return slices.Clip(out)
}

// inc returns a+1, or a itself at the top of the range (so that nothing
// is adjacent to the top).
func (a u128) inc() u128 {
	switch {
	case a.lo != ^uint64(0):
		return u128{a.hi, a.lo + 1}
	case a.hi != ^uint64(0):
		return u128{a.hi + 1, 0}
	}
	return a
}

// Contains reports whether a is in the blocklist; an IPv4-mapped IPv6
// address is looked up as IPv4. It is a binary search over the merged
// ranges: it does not allocate and is safe for concurrent use.
func (b *Blocklist) Contains(a netip.Addr) bool {
	if b == nil {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		x := a.As4()
		v := binary.BigEndian.Uint32(x[:])
		s := b.v4
		i, j := 0, len(s) // find the first span with lo > v
		for i < j {
			m := int(uint(i+j) >> 1)
			if s[m].lo <= v {
				i = m + 1
			} else {
				j = m
			}
		}
		return i > 0 && v <= s[i-1].hi
	}
	if !a.Is6() {
		return false
	}
	x := a.As16()
	v := u128{binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(x[8:])}
	s := b.v6
	i, j := 0, len(s)
	for i < j {
		m := int(uint(i+j) >> 1)
		if !v.less(s[m].lo) {
			i = m + 1
		} else {
			j = m
		}
	}
	return i > 0 && !s[i-1].hi.less(v)
}

// Len returns the number of distinct prefixes in b.
func (b *Blocklist) Len() int {
	if b == nil {
		return 0
	}
	return len(b.prefixes)
}

// Prefixes returns the prefixes of b, masked, sorted and without
// duplicates, for an exporter. It allocates a copy.
func (b *Blocklist) Prefixes() []netip.Prefix {
	if b == nil {
		return nil
	}
	return slices.Clone(b.prefixes)
}

// First returns a copy of at most n of b's prefixes (the first in
// Prefixes' order), without copying the rest.
func (b *Blocklist) First(n int) []netip.Prefix {
	if b == nil {
		return nil
	}
	return slices.Clone(b.prefixes[:min(n, len(b.prefixes))])
}

// WatchFile reads the blocklist at path now and again whenever its size,
// modification time or identity (a file renamed over it) changes, checking
// every interval, until ctx is done; then it returns nil. After each read
// it calls onChange with the new list, or with nil and the error when the
// file cannot be read or parsed: the caller keeps the list it has, and is
// told again only when the file changes again. onChange runs on
// WatchFile's goroutine. WatchFile returns an error at once if interval
// is not positive.
func WatchFile(ctx context.Context, path string, interval time.Duration, onChange func(*Blocklist, error)) error {
	if interval <= 0 {
		return fmt.Errorf("limit: WatchFile %s: interval must be positive, got %v", path, interval)
	}
	w := fileWatch{path: path, onChange: onChange}
	w.check()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			w.check()
		}
	}
}

type fileWatch struct {
	path     string
	onChange func(*Blocklist, error)
	seen     bool        // check has run
	fi       os.FileInfo // at the last read; nil if stat failed
	statErr  string      // the last stat error
}

func (w *fileWatch) check() {
	fi, err := os.Stat(w.path)
	if err != nil {
		if w.seen && w.fi == nil && err.Error() == w.statErr {
			return
		}
		w.seen, w.fi, w.statErr = true, nil, err.Error()
		w.onChange(nil, fmt.Errorf("blocklist: %w", err))
		return
	}
	if w.seen && w.fi != nil && os.SameFile(w.fi, fi) && fi.Size() == w.fi.Size() && fi.ModTime().Equal(w.fi.ModTime()) {
		return
	}
	w.seen, w.fi, w.statErr = true, fi, ""
	b, err := readBlocklist(w.path)
	w.onChange(b, err)
}

func readBlocklist(path string) (*Blocklist, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("blocklist: %w", err)
	}
	defer f.Close()
	b, err := ParseBlocklist(f)
	if be, ok := errors.AsType[*BlocklistError](err); ok {
		be.Path = path
	}
	return b, err // a read error from f names path already
}
