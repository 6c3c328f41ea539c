package asn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// debianLocationDB is the file Debian's libloc-database installs.
const debianLocationDB = "/usr/share/libloc-location/location.db"

// requireReal skips the test when a real dependency is missing, or fails
// it under CI=true, where scripts/test.sh installs every one.
func requireReal(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true: install libloc-database and python3-location)", what)
	}
	t.Skipf("%s is missing: apt-get install libloc-database python3-location", what)
}

// debianPython returns the interpreter Debian's python3-location is
// installed for, and whether it can import the module.
func debianPython(t testing.TB) string {
	t.Helper()
	py := "/usr/bin/python3" // not a virtualenv's or pyenv's python3 on PATH
	if _, err := os.Stat(py); err != nil {
		requireReal(t, false, py)
	}
	out, err := exec.Command(py, "-c", "import location").CombinedOutput()
	requireReal(t, err == nil, "python3-location ("+strings.TrimSpace(string(out))+")")
	return py
}

func openDebianDB(t testing.TB) *locDB {
	t.Helper()
	_, err := os.Stat(debianLocationDB)
	requireReal(t, err == nil, debianLocationDB)
	data, err := os.ReadFile(debianLocationDB)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openLocation(data)
	if err != nil {
		t.Fatalf("openLocation(%s): %v", debianLocationDB, err)
	}
	return db
}

// agreementAddrs returns n addresses drawn with a fixed seed: uniform
// IPv4, IPv6 in the global unicast range and in the regional registries'
// blocks, uniform 128-bit (nearly all unrouted), and addresses inside
// networks the database holds (a random walk down its tree), so that
// shallow and deep networks of both families are hit.
func agreementAddrs(db *locDB, n int) []netip.Addr {
	r := rand.New(rand.NewPCG(11, 2026))
	rirBlocks := []uint16{0x2001, 0x2400, 0x2401, 0x2402, 0x2403, 0x2404, 0x2405, 0x2406, 0x2407, 0x2408,
		0x2600, 0x2601, 0x2602, 0x2603, 0x2604, 0x2605, 0x2606, 0x2607, 0x2800, 0x2801, 0x2803,
		0x2a00, 0x2a01, 0x2a02, 0x2a03, 0x2a04, 0x2a05, 0x2a06, 0x2a07, 0x2a09, 0x2a0a, 0x2a0b, 0x2a0c, 0x2a0d, 0x2a0e, 0x2a0f, 0x2c0f}
	addrs := make([]netip.Addr, 0, n)
	for i := range n {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], r.Uint64())
		binary.BigEndian.PutUint64(b[8:], r.Uint64())
		switch i % 10 {
		case 0, 1, 2, 3: // uniform IPv4
			addrs = append(addrs, netip.AddrFrom4([4]byte(b[12:])))
		case 4: // 2000::/3
			b[0] = 0x20 | b[0]&0x1f
			addrs = append(addrs, netip.AddrFrom16(b))
		case 5, 6: // a registry's block
			binary.BigEndian.PutUint16(b[:2], rirBlocks[r.IntN(len(rirBlocks))])
			b[2] &= 0x0f | byte(r.IntN(2))<<7 // mostly low in the block, where allocations are
			addrs = append(addrs, netip.AddrFrom16(b))
		case 7: // anything
			addrs = append(addrs, netip.AddrFrom16(b).Unmap())
		case 8: // inside a network, IPv4
			addrs = append(addrs, db.randomInside(r, true))
		case 9: // inside a network, IPv6
			addrs = append(addrs, db.randomInside(r, false))
		}
	}
	return addrs
}

// randomInside walks down the tree along random existing branches and
// returns a random address under where the walk stopped.
func (db *locDB) randomInside(r *rand.Rand, v4 bool) netip.Addr {
	s := locStart{leaf: locNoNetwork}
	var a addrBits
	if v4 {
		s = db.ipv4
		a.lo = 0xffff << 32
	}
	for s.depth < 128 {
		rec := db.tree[int(s.node)*locNodeSize:]
		if be32(rec, 8) != locNoNetwork && r.IntN(4) == 0 {
			break
		}
		z, o := be32(rec, 0), be32(rec, 4)
		var bit uint64
		switch {
		case z == 0 && o == 0:
		case z == 0:
			bit = 1
		case o != 0:
			bit = uint64(r.IntN(2))
		}
		if z == 0 && o == 0 {
			break
		}
		if bit == 1 {
			if s.depth < 64 {
				a.hi |= 1 << (63 - s.depth)
			} else {
				a.lo |= 1 << (127 - s.depth)
			}
			s.node = o
		} else {
			s.node = z
		}
		s.depth++
	}
	// random bits below the walk
	if s.depth < 64 {
		a.hi |= r.Uint64() >> s.depth
		a.lo = r.Uint64()
	} else if s.depth < 128 {
		a.lo |= r.Uint64() >> (s.depth - 64)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b).Unmap()
}

// pyResult is one line of testdata/locate.py's output.
type pyResult struct {
	found   bool
	prefix  netip.Prefix
	asn     uint32
	country string
	err     string
}

func (r pyResult) String() string {
	switch {
	case r.err != "":
		return "raised " + r.err
	case !r.found:
		return "no network"
	}
	return fmt.Sprintf("%s AS%d %q", r.prefix, r.asn, r.country)
}

// pythonLookup asks Debian's python3-location about every address, in
// one process.
func pythonLookup(t *testing.T, py, dbPath string, addrs []netip.Addr) map[netip.Addr]pyResult {
	t.Helper()
	var in bytes.Buffer
	for _, a := range addrs {
		in.WriteString(a.String() + "\n")
	}
	cmd := exec.Command(py, "testdata/locate.py", dbPath)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locate.py: %v\n%s", err, stderr.String())
	}
	res := make(map[netip.Addr]pyResult, len(addrs))
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			t.Fatalf("locate.py wrote %q: %v", sc.Text(), err)
		}
		var r pyResult
		switch {
		case len(f) == 2 && f[1] == "-":
		case len(f) == 3 && f[1] == "ERR":
			r.err = f[2]
		case len(f) == 4:
			r.found = true
			if r.prefix, err = netip.ParsePrefix(f[1]); err != nil {
				t.Fatalf("locate.py wrote %q: %v", sc.Text(), err)
			}
			n, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				t.Fatalf("locate.py wrote %q: %v", sc.Text(), err)
			}
			r.asn, r.country = uint32(n), f[3]
		default:
			t.Fatalf("locate.py wrote %q", sc.Text())
		}
		res[a] = r
	}
	return res
}

// TestLocationAgreesWithPython looks 10,000 addresses up in Debian's
// location database with this package's reader and with Debian's own
// python3-location, and requires the same answer for every one: network,
// ASN and country, or no network.
func TestLocationAgreesWithPython(t *testing.T) {
	db := openDebianDB(t)
	py := debianPython(t)
	addrs := agreementAddrs(db, 10_000)
	want := pythonLookup(t, py, debianLocationDB, addrs)
	if len(want) < len(addrs)*9/10 { // duplicates collapse; 10% is far more than chance gives
		t.Fatalf("locate.py answered for %d distinct addresses of %d", len(want), len(addrs))
	}
	var found4, found6, mismatches int
	for _, a := range addrs {
		w := want[a]
		if w.err != "" {
			t.Errorf("python3-location raised for %s: %s", a, w.err)
			continue
		}
		p, nw, ok := db.lookup(a)
		var got pyResult
		if ok {
			got.found, got.prefix = true, p
			got.asn, got.country = db.network(nw)
		}
		if got != w {
			mismatches++
			if mismatches <= 20 {
				t.Errorf("lookup(%s) = %v, python3-location says %v", a, got, w)
			}
			continue
		}
		if ok && a.Is4() {
			found4++
		} else if ok {
			found6++
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d addresses disagree", mismatches, len(addrs))
	}
	t.Logf("%d addresses agree; found in a network: %d IPv4, %d IPv6", len(addrs), found4, found6)
	if found4 < 1000 || found6 < 1000 {
		t.Errorf("too few addresses found in a network (%d IPv4, %d IPv6) for the comparison to mean much", found4, found6)
	}
}

// TestFlatAgrees requires the flat ranges and the stride tables to change
// nothing but speed: on Debian's database, every answer with them is the
// answer of the plain walk from the root, for 200,000 addresses.
func TestFlatAgrees(t *testing.T) {
	db := openDebianDB(t)
	if db.v6 == nil {
		t.Fatal("no IPv6 stride table for Debian's database")
	}
	if db.flat4 == nil || db.flat6 == nil {
		t.Fatal("no flat ranges for Debian's database")
	}
	t.Logf("flat ranges: %d IPv4 (%d KiB), %d IPv6 (%d KiB)", len(db.flat4.start), db.flat4.size()>>10, len(db.flat6.start), db.flat6.size()>>10)
	plain := *db
	plain.v4, plain.v6, plain.flat4, plain.flat6 = nil, nil, nil, nil
	for _, a := range agreementAddrs(db, 200_000) {
		p1, n1, ok1 := db.lookup(a)
		p2, n2, ok2 := plain.lookup(a)
		if p1 != p2 || n1 != n2 || ok1 != ok2 {
			t.Fatalf("lookup(%s) = %s %d %v with tables, %s %d %v without", a, p1, n1, ok1, p2, n2, ok2)
		}
	}
}
