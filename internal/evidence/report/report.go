// Package report turns the evidence log's episode records into what an
// operator sends: JSON for scripts, Markdown with a PNG chart, one
// self-contained HTML page a provider can read and print, and for each
// organisation a plain-text abuse notice and XARF v4 reports.
//
// It reads a data directory offline through evidence.Export, so every
// record it uses is proved against the latest signed checkpoint (records
// not yet signed are left out and counted), or records handed to it (a
// verified bundle). It never writes the log. Counting requests into
// episodes and attributing sources happen in package evidence and asn
// when the records are written; report only reads what they recorded, and
// the last record of each episode ID is that episode.
//
// Besides episode records it reads three kinds, whose bodies it expects
// in these shapes (fields beyond these are ignored):
//
//	config           {"tracker":{"abuse_contact":"…"},
//	                  "attribution":[{"kind":"location_db","path":"…","vendor":"…",
//	                    "description":"…","date":"RFC 3339","sha256":"hex","networks":N}]}
//	                 (either field may also sit under "config", and keys may be
//	                 Go field names: serve records its whole configuration,
//	                 {"version":…,"config":{"Tracker":{"AbuseContact":…},…}};
//	                 an attribution entry is an asn.SourceInfo)
//	registry.revoke  {"info_hash":"40 hex","reason":"…"}
//	registry.restore {"info_hash":"40 hex"}
//
// A config record without "attribution" makes the report say that the
// attribution source was not recorded.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"warden/internal/evidence"
)

// Options say what goes into a report.
type Options struct {
	// Since and Until bound the period: an episode is in the report if
	// [first_seen, last_seen] overlaps [Since, Until]. Zero means
	// unbounded.
	Since, Until time.Time
	// Contact is the reporter's email address; empty takes
	// tracker.abuse_contact from the log's config record.
	Contact string
	// Org names the reporter; empty takes the contact's domain.
	Org string
	// Now dates the report; zero means time.Now.
	Now time.Time
	// Top is how many sources the chart draws; 0 means DefaultTop.
	Top int
}

// DefaultTop is how many sources a chart draws by default.
const DefaultTop = 5

// maxKeptBytes bounds the episode bodies a report holds while it reads:
// a period holding more is refused with ErrTooLarge rather than read into
// unbounded memory.
const maxKeptBytes = 256 << 20

// maxRevoked bounds the revocations kept to mark hashes as revoked.
const maxRevoked = 1 << 16

// ErrTooLarge says the episodes of the period do not fit a report.
var ErrTooLarge = errors.New("the episodes of the period take more than 256 MiB: narrow it with --since and --until")

// Read reads the evidence log in dataDir offline and builds the report:
// every record up to the latest checkpoint, each proved against it
// (evidence.Export), one at a time. It returns Export's errors (an
// evidence.VerifyError for a tampered log) and ErrTooLarge.
func Read(ctx context.Context, dataDir string, opts Options) (*Report, error) {
	b := newBuilder(opts)
	pr, pw := io.Pipe()
	type result struct {
		rep evidence.ExportReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := evidence.Export(ctx, dataDir, time.Time{}, pw)
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		done <- result{rep, err}
	}()
	head, readErr := readBundle(pr, b)
	pr.CloseWithError(errReaderDone) // unblocks Export if reading stopped early
	res := <-done
	if res.err != nil && !errors.Is(res.err, errReaderDone) {
		return nil, fmt.Errorf("report on %s: %w", dataDir, res.err)
	}
	if readErr != nil {
		return nil, fmt.Errorf("report on %s: %w", dataDir, readErr)
	}
	cp := res.rep.Checkpoint
	if string(cp.Note) != head.checkpoint {
		return nil, fmt.Errorf("report on %s: the bundle's checkpoint is not the one Export proved against", dataDir)
	}
	return b.finish(cp, head.key, res.rep.Unsigned, int64(res.rep.Pruned)), nil
}

var errReaderDone = errors.New("report: reader done")

// FromRecords builds a report from records already proved against cp,
// signed by key: those of a bundle that evidence.VerifyBundle accepted.
// It returns ErrTooLarge when the episodes of the period exceed the
// bound.
func FromRecords(records []evidence.BundleEntry, cp evidence.Checkpoint, key string, opts Options) (*Report, error) {
	b := newBuilder(opts)
	for _, r := range records {
		if err := b.add(r); err != nil {
			return nil, err
		}
	}
	return b.finish(cp, key, 0, 0), nil
}
