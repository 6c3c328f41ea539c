package asn

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// mmdbRecord is the GeoLite2-ASN record layout (also used by other
// vendors' ASN databases in MaxMind format).
type mmdbRecord struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
	Org string `maxminddb:"autonomous_system_organization"`
}

// mmdbDB is a MaxMind DB of ASN records. Every record is decoded once at
// open, keyed by its offset in the file, so that a lookup is a tree walk
// and a map read, and allocates nothing.
type mmdbDB struct {
	r        *maxminddb.Reader
	records  map[uintptr]mmdbRecord
	networks int
}

// openMMDB checks data as a MaxMind DB (the whole search tree and data
// section, since the file may be hostile) and decodes its records.
func openMMDB(data []byte) (*mmdbDB, error) {
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, err
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	db := &mmdbDB{r: r, records: map[uintptr]mmdbRecord{}}
	withASN := 0
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("network %s: %w", res.Prefix(), err)
		}
		db.networks++
		off := res.Offset()
		if _, seen := db.records[off]; seen {
			continue
		}
		var rec mmdbRecord
		if err := res.Decode(&rec); err != nil {
			return nil, fmt.Errorf("network %s: not an ASN record: %w", res.Prefix(), err)
		}
		if rec.ASN != 0 {
			withASN++
		}
		db.records[off] = rec
	}
	if withASN == 0 {
		return nil, fmt.Errorf("no record has an autonomous_system_number: not an ASN database (type %q)", r.Metadata.DatabaseType)
	}
	return db, nil
}

// lookup returns the network holding a (unmapped) and its record. It
// does not allocate.
func (db *mmdbDB) lookup(a netip.Addr) (netip.Prefix, mmdbRecord, bool) {
	res := db.r.Lookup(a)
	if !res.Found() {
		return netip.Prefix{}, mmdbRecord{}, false
	}
	rec, ok := db.records[res.Offset()]
	if !ok {
		return netip.Prefix{}, mmdbRecord{}, false
	}
	p := res.Prefix()
	if a.Is4() && !p.Addr().Is4() {
		// The record sits above the IPv4 subtree (::/96), so it holds
		// all of IPv4; say so in IPv4 form, as the address was given.
		p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return p, rec, true
}
