// Package asn answers "who owns this address" offline: the network an
// address belongs to, its autonomous system, organisation and country,
// and (for the operator's own networks only) an abuse mailbox. The
// evidence package uses it to attribute abusive sources; asn knows
// nothing of evidence, the tracker or the config file.
//
// Three sources are consulted, in this order, and the first that knows
// the address answers:
//
//  1. the operator's networks file (evidence.networks_file), a
//     tab-separated list written by hand (see ParseNetworks). It is the
//     only source of abuse mailboxes: none is ever guessed.
//  2. a MaxMind DB in the GeoLite2-ASN layout (evidence.mmdb_file),
//     read with github.com/oschwald/maxminddb-golang/v2.
//  3. the IPFire location database (libloc format), which Debian ships
//     in libloc-database and Open finds by itself. asn has its own
//     reader for it, checked against Debian's python3-location.
//
// Every file is read once at Open, and checked then, since a data file
// may be damaged or hostile: an offset or index out of range is an error
// naming the file and the record, never a panic. The large files are
// mapped, not copied into the heap; what Open builds beside them is a
// few MB (about 20 MB for Debian's 55 MB location database, whose tree
// it flattens into ranges so that a lookup reads a few cache lines
// rather than one per bit; opening it takes a fifth of a second). A DB
// never changes; to pick up new files, Open another and swap a pointer.
package asn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

// Source kinds, in order of precedence: Info.Source and SourceInfo.Kind.
const (
	SourceNetworks = "networks_file"
	SourceMMDB     = "mmdb"
	SourceLocation = "location_db"
)

// LocationDBOff as Options.LocationDB turns the location database off.
const LocationDBOff = "off"

// locationDBPaths are where Open looks for a location database when
// none is named: the copy `location update` keeps fresh, then the one
// Debian's libloc-database installs.
var locationDBPaths = []string{
	"/var/lib/location/database.db",
	"/usr/share/libloc-location/location.db",
}

// Options names the files to read. The zero value reads only the location
// database, if one is installed.
type Options struct {
	NetworksFile string // the operator's networks; "" for none
	MMDBFile     string // a GeoLite2-ASN style MaxMind DB; "" for none
	LocationDB   string // a libloc database; "" finds Debian's, LocationDBOff for none
}

// Info is what the sources know of an address.
type Info struct {
	Prefix     netip.Prefix // the matched network, IPv4 in IPv4 form
	ASN        uint32       // 0 when unknown
	Org        string       // the AS or network's organisation, "" when unknown
	Country    string       // two letters, "" when unknown
	AbuseEmail string       // only from the networks file
	Source     string       // the Kind of the source that answered
}

// SourceInfo describes a file a DB was opened from, for reports that
// must say what their attribution rests on.
type SourceInfo struct {
	Kind        string    `json:"kind"`        // SourceNetworks, SourceMMDB or SourceLocation
	Path        string    `json:"path"`        // as given, or as found
	Vendor      string    `json:"vendor"`      // who made it (libloc vendor, MaxMind database_type)
	Description string    `json:"description"` // the file's own description, first line
	License     string    `json:"license"`     // libloc only
	Date        time.Time `json:"date"`        // when the data was built (file time for a networks file), UTC
	SHA256      string    `json:"sha256"`      // of the whole file, lower-case hex
	Networks    int       `json:"networks"`    // networks it holds
}

// DB answers lookups from the sources it was opened with. It is safe for
// concurrent use.
type DB struct {
	nets    *Networks
	mmdb    *mmdbDB
	loc     *locDB
	sources []SourceInfo
	closed  atomic.Bool
}

// Open reads and checks the files opts names. A file that is named but
// missing, unreadable, damaged or of the wrong kind is an error naming
// it; so is a location database found by itself but damaged. Having no
// source at all is not an error: every lookup then misses.
func Open(opts Options) (*DB, error) {
	d := &DB{}
	if opts.NetworksFile != "" {
		if err := d.openNetworks(opts.NetworksFile); err != nil {
			return nil, err
		}
	}
	if opts.MMDBFile != "" {
		if err := d.openMMDB(opts.MMDBFile); err != nil {
			return nil, err
		}
	}
	path := opts.LocationDB
	if path == "" {
		for _, p := range locationDBPaths {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
	}
	if path != "" && path != LocationDBOff {
		if err := d.openLocation(path); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *DB) openNetworks(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("networks file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("networks file: %w", err)
	}
	h := sha256.New()
	n, err := ParseNetworks(io.TeeReader(f, h))
	if err != nil {
		if e, ok := errors.AsType[*NetworksError](err); ok {
			e.Path = path
			return e
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	d.nets = n
	d.sources = append(d.sources, SourceInfo{
		Kind:     SourceNetworks,
		Path:     path,
		Date:     fi.ModTime().UTC(),
		SHA256:   hex.EncodeToString(h.Sum(nil)),
		Networks: n.Len(),
	})
	return nil
}

func (d *DB) openMMDB(path string) error {
	data, _, err := d.mapPath(path)
	if err != nil {
		return fmt.Errorf("mmdb %w", err)
	}
	db, err := openMMDB(data)
	if err != nil {
		return fmt.Errorf("mmdb %s: %w", path, err)
	}
	d.mmdb = db
	md := db.r.Metadata
	desc := md.Description["en"]
	d.sources = append(d.sources, SourceInfo{
		Kind:        SourceMMDB,
		Path:        path,
		Vendor:      md.DatabaseType,
		Description: firstLine(desc),
		Date:        md.BuildTime().UTC(),
		SHA256:      sum(data),
		Networks:    db.networks,
	})
	return nil
}

func (d *DB) openLocation(path string) error {
	data, mapped, err := d.mapPath(path)
	if err != nil {
		return fmt.Errorf("location database %w", err)
	}
	db, err := openLocation(data)
	if err != nil {
		if e, ok := errors.AsType[*LocationError](err); ok {
			e.Path = path
		}
		return err
	}
	d.loc = db
	d.sources = append(d.sources, SourceInfo{
		Kind:        SourceLocation,
		Path:        path,
		Vendor:      db.vendor,
		Description: firstLine(db.description),
		License:     firstLine(db.license),
		Date:        db.created,
		SHA256:      sum(data),
		Networks:    len(db.nets) / locNetSize,
	})
	if mapped {
		dropResident(data)
	}
	return nil
}

// mapPath maps the file at path for as long as d is reachable; errors
// start with the path.
func (d *DB) mapPath(path string) (data []byte, mapped bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err // *PathError names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() == 0 {
		return nil, false, fmt.Errorf("%s: empty file", path)
	}
	if data, mapped, err = mapFile(f, fi.Size(), d); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return data, mapped, nil
}

func readFile(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

// Lookup returns what the first source that knows a says of it (see the
// package comment for the order). An IPv4-mapped address is looked up
// as IPv4, and a zone is ignored. It does not allocate or block, and
// returns false after Close.
func (d *DB) Lookup(a netip.Addr) (Info, bool) {
	if !a.IsValid() || d.closed.Load() {
		return Info{}, false
	}
	a = a.Unmap().WithZone("")
	if n, ok := d.nets.Lookup(a); ok {
		return Info{Prefix: n.Prefix, ASN: n.ASN, Org: n.Org, Country: n.Country, AbuseEmail: n.AbuseEmail, Source: SourceNetworks}, true
	}
	if d.mmdb != nil {
		if p, rec, ok := d.mmdb.lookup(a); ok {
			runtime.KeepAlive(d) // the mapping lives as long as d
			return Info{Prefix: p, ASN: rec.ASN, Org: rec.Org, Source: SourceMMDB}, true
		}
	}
	if d.loc != nil {
		if p, nw, ok := d.loc.lookup(a); ok {
			asn, cc := d.loc.network(nw)
			org := d.loc.asNameOf(asn)
			runtime.KeepAlive(d)
			return Info{Prefix: p, ASN: asn, Org: org, Country: cc, Source: SourceLocation}, true
		}
	}
	runtime.KeepAlive(d)
	return Info{}, false
}

// Sources describes the files d was opened from, in order of precedence.
func (d *DB) Sources() []SourceInfo {
	return append([]SourceInfo(nil), d.sources...)
}

// Close ends d's use: later lookups miss. It is idempotent and always
// returns nil. The mapped files are given back once d is unreachable, so
// a Lookup racing with Close never reads unmapped memory.
func (d *DB) Close() error {
	d.closed.Store(true)
	return nil
}
