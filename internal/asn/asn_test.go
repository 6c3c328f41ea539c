package asn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testFiles writes a networks file, a MaxMind DB and a location database
// that overlap, so that each address below is known to one, two or all
// three of them.
func testFiles(t testing.TB) Options {
	t.Helper()
	dir := t.TempDir()
	opts := Options{
		NetworksFile: filepath.Join(dir, "networks.tsv"),
		MMDBFile:     filepath.Join(dir, "asn.mmdb"),
		LocationDB:   filepath.Join(dir, "location.db"),
	}
	networks := "# our own\n" +
		"192.0.2.0/26\t64496\tOur Office\tNL\tabuse@our.example\n" +
		"2001:db8:aaaa::/48\t64496\tOur Lab\tNL\t-\n"
	write(t, opts.NetworksFile, []byte(networks))
	write(t, opts.MMDBFile, buildMMDB(1700000000, "GeoLite2-ASN", []mmdbNet{
		{"192.0.2.0/24", 64601, "MMDB DOC NET"},
		{"2001:db8::/32", 64610, "MMDB DOC SIX"},
	}))
	write(t, opts.LocationDB, buildLocation(1667023194, []testAS{{64500, "LOC-EIGHT"}, {64510, "LOC-DOC"}}, []testNet{
		{"192.0.0.0/8", 64500, "US"},
		{"2001:db8::/32", 64510, "SE"},
		{"2001:db9::/32", 64510, "SE"},
	}))
	return opts
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenPrecedence(t *testing.T) {
	d, err := Open(testFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tests := []struct {
		addr string
		want Info
		ok   bool
	}{
		{"192.0.2.1", Info{netip.MustParsePrefix("192.0.2.0/26"), 64496, "Our Office", "NL", "abuse@our.example", SourceNetworks}, true},
		{"::ffff:192.0.2.1", Info{netip.MustParsePrefix("192.0.2.0/26"), 64496, "Our Office", "NL", "abuse@our.example", SourceNetworks}, true},
		{"192.0.2.200", Info{netip.MustParsePrefix("192.0.2.0/24"), 64601, "MMDB DOC NET", "", "", SourceMMDB}, true},
		{"192.1.0.1", Info{netip.MustParsePrefix("192.0.0.0/8"), 64500, "LOC-EIGHT", "US", "", SourceLocation}, true},
		{"2001:db8:aaaa::1", Info{netip.MustParsePrefix("2001:db8:aaaa::/48"), 64496, "Our Lab", "NL", "", SourceNetworks}, true},
		{"2001:db8:aaaa::1%eth0", Info{netip.MustParsePrefix("2001:db8:aaaa::/48"), 64496, "Our Lab", "NL", "", SourceNetworks}, true},
		{"2001:db8:bbbb::1", Info{netip.MustParsePrefix("2001:db8::/32"), 64610, "MMDB DOC SIX", "", "", SourceMMDB}, true},
		{"2001:db9::1", Info{netip.MustParsePrefix("2001:db9::/32"), 64510, "LOC-DOC", "SE", "", SourceLocation}, true},
		{"203.0.113.1", Info{}, false},
		{"2001:dba::1", Info{}, false},
	}
	for _, tt := range tests {
		got, ok := d.Lookup(netip.MustParseAddr(tt.addr))
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%s) = %+v, %v\n                    want %+v, %v", tt.addr, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := d.Lookup(netip.Addr{}); ok {
		t.Error("Lookup of the zero Addr found something")
	}
}

func TestSources(t *testing.T) {
	opts := testFiles(t)
	d, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	got := d.Sources()
	if len(got) != 3 {
		t.Fatalf("Sources() = %+v, want 3", got)
	}
	fi, err := os.Stat(opts.NetworksFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []SourceInfo{
		{Kind: SourceNetworks, Path: opts.NetworksFile, Date: fi.ModTime().UTC(), Networks: 2},
		{Kind: SourceMMDB, Path: opts.MMDBFile, Vendor: "GeoLite2-ASN", Description: "Test ASN database", Date: time.Unix(1700000000, 0).UTC(), Networks: got[1].Networks},
		{Kind: SourceLocation, Path: opts.LocationDB, Vendor: "Test Vendor", Description: "A test database", License: "CC0-1.0", Date: time.Unix(1667023194, 0).UTC(), Networks: 3},
	}
	for i, path := range []string{opts.NetworksFile, opts.MMDBFile, opts.LocationDB} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		want[i].SHA256 = hex.EncodeToString(sum[:])
		if got[i] != want[i] {
			t.Errorf("Sources()[%d] = %+v\n            want %+v", i, got[i], want[i])
		}
	}
	if got[1].Networks < 2 {
		t.Errorf("mmdb networks = %d, want at least 2", got[1].Networks)
	}
	got[0].Path = "changed"
	if d.Sources()[0].Path != opts.NetworksFile {
		t.Error("Sources returned d's own slice")
	}
}

// TestOpenErrors: a file named but missing, damaged or of the wrong
// kind stops Open with an error naming it; it is never skipped.
func TestOpenErrors(t *testing.T) {
	good := testFiles(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	write(t, bad, []byte("192.0.2.0/24 64500 spaces not tabs\n"))
	empty := filepath.Join(dir, "empty")
	write(t, empty, nil)
	truncated := filepath.Join(dir, "truncated.db")
	b, err := os.ReadFile(good.LocationDB)
	if err != nil {
		t.Fatal(err)
	}
	write(t, truncated, b[:5000])
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		opts    Options
		wantErr string
		is      error
	}{
		{"networks missing", Options{NetworksFile: missing, LocationDB: LocationDBOff}, "networks file: open " + missing, fs.ErrNotExist},
		{"networks bad", Options{NetworksFile: bad, LocationDB: LocationDBOff}, "networks file " + bad + ": line 1: has 1 tab-separated fields", nil},
		{"mmdb missing", Options{MMDBFile: missing, LocationDB: LocationDBOff}, "mmdb open " + missing, fs.ErrNotExist},
		{"mmdb is a location db", Options{MMDBFile: good.LocationDB, LocationDB: LocationDBOff}, "mmdb " + good.LocationDB + ": error opening database: invalid MaxMind DB file", nil},
		{"mmdb empty", Options{MMDBFile: empty, LocationDB: LocationDBOff}, "mmdb " + empty + ": empty file", nil},
		{"mmdb directory", Options{MMDBFile: dir, LocationDB: LocationDBOff}, "mmdb " + dir + ": not a regular file", nil},
		{"location missing", Options{LocationDB: missing}, "location database open " + missing, fs.ErrNotExist},
		{"location truncated", Options{LocationDB: truncated}, "location database " + truncated + ": network tree at 4272, 1632 bytes, runs past the end of the file (5000 bytes)", nil},
		{"location is an mmdb", Options{LocationDB: good.MMDBFile}, "location database " + good.MMDBFile + `: not a location database (no "LOCDBXX" magic)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(tt.opts)
			if err == nil {
				t.Fatalf("Open succeeded with %+v", d.Sources())
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("Open error %q, want it to start %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Open error %v is not %v", err, tt.is)
			}
		})
	}
}

// TestOpenFindsLocationDB: with no LocationDB named, Open takes the first
// of the usual places that exists; LocationDBOff takes none.
func TestOpenFindsLocationDB(t *testing.T) {
	files := testFiles(t)
	old := locationDBPaths
	defer func() { locationDBPaths = old }()
	locationDBPaths = []string{filepath.Join(t.TempDir(), "absent.db"), files.LocationDB}

	d, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Sources(); len(s) != 1 || s[0].Kind != SourceLocation || s[0].Path != files.LocationDB {
		t.Errorf("Open(Options{}) sources = %+v, want the location database at %s", s, files.LocationDB)
	}
	if info, ok := d.Lookup(netip.MustParseAddr("192.0.2.1")); !ok || info.Source != SourceLocation {
		t.Errorf("Lookup = %+v %v, want an answer from the location database", info, ok)
	}

	d, err = Open(Options{LocationDB: LocationDBOff})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Sources(); len(s) != 0 {
		t.Errorf("Open with LocationDBOff sources = %+v, want none", s)
	}
	if _, ok := d.Lookup(netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("a DB with no sources found something")
	}

	locationDBPaths = []string{filepath.Join(t.TempDir(), "absent.db")}
	if d, err = Open(Options{}); err != nil || len(d.Sources()) != 0 {
		t.Errorf("Open with nothing installed = %v, %v; want no sources and no error", d.Sources(), err)
	}
}

// TestOpenDebianDefault: where libloc-database is installed, Open finds
// it with no options, and reports its date and hash.
func TestOpenDebianDefault(t *testing.T) {
	_, err := os.Stat(debianLocationDB)
	requireReal(t, err == nil, debianLocationDB)
	d, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Sources()
	if len(s) != 1 || s[0].Kind != SourceLocation || s[0].Date.Before(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) || len(s[0].SHA256) != 64 || s[0].Vendor == "" {
		t.Fatalf("Open(Options{}) sources = %+v, want Debian's location database", s)
	}
	info, ok := d.Lookup(netip.MustParseAddr("8.8.8.8"))
	if !ok || info.ASN != 15169 || info.Country != "US" || info.Prefix != netip.MustParsePrefix("8.8.8.0/24") || !strings.Contains(info.Org, "GOOGLE") {
		t.Errorf("Lookup(8.8.8.8) = %+v %v, want 8.8.8.0/24 AS15169 GOOGLE US", info, ok)
	}
	t.Logf("%s: %s, %s, %d networks, sha256 %s", s[0].Path, s[0].Vendor, s[0].Date.Format(time.DateOnly), s[0].Networks, s[0].SHA256)
}

func TestClose(t *testing.T) {
	d, err := Open(testFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.1.0.1")
	if _, ok := d.Lookup(a); !ok {
		t.Fatal("not found before Close")
	}
	for range 2 {
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, ok := d.Lookup(a); ok {
		t.Error("found after Close")
	}
}

// TestLookupAllocs: a lookup answered by any source, or by none,
// allocates nothing.
func TestLookupAllocs(t *testing.T) {
	d, err := Open(testFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"192.0.2.1", "192.0.2.200", "192.1.0.1", "2001:db8:aaaa::1%eth0", "2001:db8:bbbb::1", "2001:db9::1", "::ffff:203.0.113.1"} {
		a := netip.MustParseAddr(s)
		if n := testing.AllocsPerRun(100, func() { sinkInfo, _ = d.Lookup(a) }); n != 0 {
			t.Errorf("Lookup(%s) allocates %v times", s, n)
		}
	}
}

// TestConcurrentLookup: lookups from many goroutines, and a Close among
// them, share a DB safely (run with -race).
func TestConcurrentLookup(t *testing.T) {
	d, err := Open(testFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.1.0.1"), netip.MustParseAddr("2001:db8:bbbb::1")}
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				if info, ok := d.Lookup(addrs[(g+i)%len(addrs)]); ok && info.Source == "" {
					t.Error("an answer without a source")
					return
				}
			}
		}()
	}
	d.Close()
	for range 4 {
		<-done
	}
}
