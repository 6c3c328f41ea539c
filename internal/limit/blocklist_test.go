package limit

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const sampleBlocklist = `# abusive networks
192.0.2.0/24
198.51.100.7          # one address
10.0.0.0/8

2001:db8:bad::/48
2001:db8::1
203.0.113.0/24
192.0.2.128/25        # inside 192.0.2.0/24 already
192.0.2.0/24          # duplicate
`

func TestParseBlocklist(t *testing.T) {
	b, err := ParseBlocklist(strings.NewReader(sampleBlocklist))
	if err != nil {
		t.Fatal(err)
	}
	wantPrefixes := []string{"10.0.0.0/8", "192.0.2.0/24", "192.0.2.128/25", "198.51.100.7/32", "203.0.113.0/24", "2001:db8::1/128", "2001:db8:bad::/48"}
	var got []string
	for _, p := range b.Prefixes() {
		got = append(got, p.String())
	}
	if !slices.Equal(got, wantPrefixes) || b.Len() != len(wantPrefixes) {
		t.Fatalf("Prefixes() = %v, want %v", got, wantPrefixes)
	}
	for addr, want := range map[string]bool{
		"192.0.2.0":              true,
		"192.0.2.255":            true,
		"192.0.1.255":            false,
		"192.0.3.0":              false,
		"198.51.100.7":           true,
		"198.51.100.8":           false,
		"10.255.255.255":         true,
		"11.0.0.0":               false,
		"203.0.113.9":            true,
		"::ffff:192.0.2.1":       true,
		"2001:db8:bad:ffff::1":   true,
		"2001:db8:bae::":         false,
		"2001:db8::1":            true,
		"2001:db8::1%eth0":       true,
		"2001:db8::2":            false,
		"::":                     false,
		"ffff:ffff:ffff:ffff::1": false,
		"0.0.0.0":                false,
		"255.255.255.255":        false,
	} {
		if got := b.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if b.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true")
	}
	var nilList *Blocklist
	if nilList.Contains(netip.MustParseAddr("192.0.2.1")) || nilList.Len() != 0 || nilList.Prefixes() != nil {
		t.Error("nil Blocklist is not empty")
	}
}

func TestParseBlocklistEdges(t *testing.T) {
	tests := []struct {
		name, in  string
		in4, out4 []string
	}{
		{"empty", "", nil, []string{"1.2.3.4"}},
		{"only comments", "# nothing\n\n   # still nothing\n", nil, []string{"1.2.3.4"}},
		{"everything", "0.0.0.0/0\n", []string{"0.0.0.0", "255.255.255.255"}, []string{"::1"}},
		{"all of IPv6 is not IPv4", "::/0\n", []string{"::1", "2001:db8::"}, []string{"1.2.3.4"}},
		{"adjacent merge", "10.0.0.0/25\n10.0.0.128/25\n", []string{"10.0.0.0", "10.0.0.127", "10.0.0.128", "10.0.0.255"}, []string{"10.0.1.0", "9.255.255.255"}},
		{"top of the range", "255.255.255.255\nffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n", []string{"255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"255.255.255.254"}},
		{"CRLF and tabs", "\t192.0.2.0/24\t\r\n", []string{"192.0.2.9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBlocklist(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tt.in4 {
				if !b.Contains(netip.MustParseAddr(a)) {
					t.Errorf("Contains(%s) = false", a)
				}
			}
			for _, a := range tt.out4 {
				if b.Contains(netip.MustParseAddr(a)) {
					t.Errorf("Contains(%s) = true", a)
				}
			}
		})
	}
}

func TestParseBlocklistErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		wantErr  string
	}{
		{"garbage", "192.0.2.0/24\n# ok\nnot-an-address\n", 3, `blocklist: line 3: "not-an-address" is not an address or CIDR prefix`},
		{"bad length", "\n192.0.2.0/33\n", 2, `blocklist: line 2: "192.0.2.0/33" has a bad prefix length`},
		{"two fields", "192.0.2.0/24 10.0.0.0/8\n", 1, `blocklist: line 1: "192.0.2.0/24 10.0.0.0/8" has a bad prefix length`},
		{"zone", "fe80::1%eth0\n", 1, `blocklist: line 1: "fe80::1%eth0" has a zone`},
		{"zone in prefix", "fe80::%eth0/64\n", 1, `blocklist: line 1: "fe80::%eth0/64" has a zone`},
		{"host bits", "10.1.2.3/8 # a typo or a /32?\n", 1, `blocklist: line 1: "10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`},
		{"IPv4-mapped", "::ffff:203.0.113.0/120\n", 1, `blocklist: line 1: "::ffff:203.0.113.0/120" is IPv4-mapped, which no source is; write the IPv4 form 203.0.113.0/24`},
		{"too long", "192.0.2.1\n" + strings.Repeat("1", 5000) + "\n", 2, "blocklist: line 2: longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBlocklist(strings.NewReader(tt.in))
			var be *BlocklistError
			if b != nil || !errors.As(err, &be) || be.Line != tt.line {
				t.Fatalf("ParseBlocklist = %v, %v; want a BlocklistError on line %d", b, err, tt.line)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to start with %q", err, tt.wantErr)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseBlocklistReadError(t *testing.T) {
	_, err := ParseBlocklist(errReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v", err)
	}
}

// reference is the slow, obvious Contains.
func reference(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func TestContainsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var lines []string
	var ps []netip.Prefix
	for range 500 {
		var p netip.Prefix
		if r.IntN(2) == 0 {
			p = netip.PrefixFrom(distinct4(r.Uint32()), 8+r.IntN(25))
		} else {
			p = netip.PrefixFrom(distinct6(r.Uint64()), 16+r.IntN(113))
		}
		p = p.Masked()
		ps = append(ps, p)
		lines = append(lines, p.String())
	}
	b, err := ParseBlocklist(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	check := func(a netip.Addr) {
		if got, want := b.Contains(a), reference(ps, a); got != want {
			t.Fatalf("Contains(%v) = %v, reference says %v", a, got, want)
		}
	}
	probes := 100_000
	if raceEnabled {
		probes = 10_000
	}
	for range probes {
		check(distinct4(r.Uint32()))
		check(distinct6(r.Uint64()))
	}
	// Edges of every prefix.
	for _, p := range ps {
		check(p.Addr())
		check(p.Addr().Prev())
		if p.Addr().Is4() {
			lo, hi := range4(p)
			_ = lo
			check(netip.AddrFrom4([4]byte{byte(hi >> 24), byte(hi >> 16), byte(hi >> 8), byte(hi)}))
		}
	}
}

func TestContainsAllocs(t *testing.T) {
	b, err := ParseBlocklist(strings.NewReader(sampleBlocklist))
	if err != nil {
		t.Fatal(err)
	}
	a4, a6 := netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("2001:db8:bad::1")
	if n := testing.AllocsPerRun(100, func() { b.Contains(a4); b.Contains(a6) }); n != 0 {
		t.Fatalf("Contains: %v allocs, want 0", n)
	}
}

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blocklist.txt")
	write := func(s string) {
		t.Helper()
		// Write a new file and rename it over the old one, as editors and
		// config management do.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	type update struct {
		b   *Blocklist
		err error
	}
	updates := make(chan update, 16)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() {
		runErr = WatchFile(ctx, path, 5*time.Millisecond, func(b *Blocklist, err error) { updates <- update{b, err} })
	})
	next := func() update {
		t.Helper()
		select {
		case u := <-updates:
			return u
		case <-time.After(5 * time.Second):
			t.Fatal("no update in 5s")
			return update{}
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case u := <-updates:
			t.Fatalf("unexpected update %+v", u)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Missing at first: one error, not one per tick.
	if u := next(); u.b != nil || !errors.Is(u.err, os.ErrNotExist) {
		t.Fatalf("missing file: %+v", u)
	}
	quiet()

	write("192.0.2.0/24\n")
	if u := next(); u.err != nil || !u.b.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Fatalf("first list: %+v", u)
	}
	quiet()

	write("192.0.2.0/24\nbogus\n")
	u := next()
	var be *BlocklistError
	if u.b != nil || !errors.As(u.err, &be) || be.Line != 2 || be.Path != path {
		t.Fatalf("bad file: %+v, want a BlocklistError for %s line 2", u, path)
	}
	if !strings.HasPrefix(u.err.Error(), "blocklist "+path+": line 2: ") {
		t.Errorf("error %q does not name the file and line", u.err)
	}
	quiet()

	write("198.51.100.0/24\n")
	if u := next(); u.err != nil || u.b.Contains(netip.MustParseAddr("192.0.2.1")) || !u.b.Contains(netip.MustParseAddr("198.51.100.1")) {
		t.Fatalf("fixed list: %+v", u)
	}

	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("WatchFile returned %v after cancel, want nil", runErr)
	}
	if err := WatchFile(t.Context(), path, 0, nil); err == nil {
		t.Fatal("WatchFile with interval 0 returned nil")
	}
}
