package evidence

// A bundle is what an operator sends a provider, a court or the sender of
// abuse: some records of the log, each with the proof that it is in the
// tree, the latest signed checkpoint and the key that signed it. It is one
// JSON object, with no whitespace and keys sorted, ending in a newline:
//
//	{"checkpoint":"<signed checkpoint note>",
//	 "format":"warden-evidence-bundle/1",
//	 "key":"<note verifier key>",
//	 "records":[{"index":N,"proof":["<base64 hash>",…],"record":{<leaf>}},…]}
//
// (shown here on several lines). To check it without warden: verify the
// checkpoint's Ed25519 signature with the key (golang.org/x/mod/sumdb/note
// format); for each record, hash the exact bytes of "record" as
// SHA-256(0x00 || bytes) and check "proof" against the checkpoint's size
// and root as an RFC 6962 audit path (tlog.CheckRecord); the record's own
// "index" must equal the entry's. Compare the key with the one the
// operator publishes: a bundle proves the records are in that key's log.
//
// A bundle has exactly one spelling: VerifyBundle re-encodes what it
// decoded and refuses any difference, so a change of any byte is caught,
// including ones that would not change the meaning.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"warden/internal/atomicfile"
)

const bundleFormat = "warden-evidence-bundle/1"

// MaxBundleBytes bounds the bundles VerifyBundle reads.
const MaxBundleBytes = 256 << 20

type bundle struct {
	Checkpoint string         `json:"checkpoint"`
	Format     string         `json:"format"`
	Key        string         `json:"key"`
	Records    []bundleRecord `json:"records"`
}

type bundleRecord struct {
	Index  int64           `json:"index"`
	Proof  []tlog.Hash     `json:"proof"`
	Record json.RawMessage `json:"record"`
}

func appendBundleHead(dst []byte, checkpoint, key string) []byte {
	dst = append(dst, `{"checkpoint":`...)
	dst = appendString(dst, checkpoint)
	dst = append(dst, `,"format":`...)
	dst = appendString(dst, bundleFormat)
	dst = append(dst, `,"key":`...)
	dst = appendString(dst, key)
	return append(dst, `,"records":[`...)
}

func appendBundleRecord(dst []byte, r *bundleRecord) []byte {
	dst = append(dst, `{"index":`...)
	dst = fmt.Appendf(dst, "%d", r.Index)
	dst = append(dst, `,"proof":[`...)
	for i, h := range r.Proof {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, h.String())
	}
	dst = append(dst, `],"record":`...)
	dst = append(dst, r.Record...)
	return append(dst, '}')
}

const bundleTail = "]}\n"

// ExportReport says what Export wrote.
type ExportReport struct {
	Checkpoint Checkpoint // the checkpoint the proofs lead to
	Records    int        // records written
	First      int64      // index of the first written, or -1
	Pruned     int        // records in range whose bodies were pruned: not written
	Unsigned   int64      // records after the checkpoint: not written
}

// Export writes to w a bundle of the records of the log in dataDir logged
// at or after since, up to its latest checkpoint, with their inclusion
// proofs, from the first record logged at or after since that is not
// pruned. Pruned records after it are left out (counted in the report). Each proof is checked before it is written, so a log tampered
// with in the range exported fails here rather than at the recipient. It
// reads in one read transaction and holds one record at a time.
func Export(ctx context.Context, dataDir string, since time.Time, w io.Writer) (ExportReport, error) {
	rep := ExportReport{First: -1}
	key, err := ReadVerifierKey(dataDir)
	if err != nil {
		return rep, err
	}
	v, err := parseVerifierKey(key)
	if err != nil {
		return rep, err
	}
	db, path, err := openForRead(ctx, dataDir)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rep, err
	}
	defer tx.Rollback()
	cp, err := latestIn(ctx, tx, v)
	if err != nil {
		return rep, fmt.Errorf("export %s: %w", path, err)
	}
	rep.Checkpoint = cp
	var size int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM records`).Scan(&size); err != nil {
		return rep, err
	}
	rep.Unsigned = max(0, size-cp.Size)

	sinceNs := int64(math.MinInt64) // pruned records have no logged time
	if since.After(time.Unix(0, math.MinInt64)) {
		sinceNs = since.UnixNano()
	}
	var first sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(idx) FROM records WHERE logged >= ?`, sinceNs).Scan(&first); err != nil {
		return rep, err
	}
	bw := bufio.NewWriter(w)
	bw.Write(appendBundleHead(nil, string(cp.Note), key))
	if first.Valid && first.Int64 < cp.Size {
		rows := newRowIter(ctx, tx, `SELECT idx, kind, logged, data, leaf, pruned_by FROM records WHERE idx %s ? ORDER BY idx LIMIT 256`,
			func(r *sql.Rows) (int64, recordRow, error) {
				var rr recordRow
				err := r.Scan(&rr.idx, &rr.kind, &rr.logged, &rr.data, &rr.leaf, &rr.prunedBy)
				return rr.idx, rr, err
			})
		rows.after = first.Int64
		hr := &dbHashes{ctx: ctx, q: tx}
		var buf []byte
		for {
			idx, row, ok, err := rows.next()
			if err != nil {
				return rep, err
			}
			if !ok || idx >= cp.Size {
				break
			}
			if !row.data.Valid {
				rep.Pruned++
				continue
			}
			data := []byte(row.data.String)
			if _, err := parseLeaf(data); err != nil {
				return rep, fmt.Errorf("export %s: %w", path, tampered("records", idx, idx, "record %d: %v", idx, err))
			}
			proof, err := tlog.ProveRecord(cp.Size, idx, hr)
			if err == nil {
				err = tlog.CheckRecord(proof, cp.Size, cp.Root, idx, tlog.RecordHash(data))
			}
			if err != nil {
				return rep, fmt.Errorf("export %s: %w", path, tampered("records", idx, idx, "record %d is not in checkpoint %d: %v", idx, cp.Seq, err))
			}
			if rep.Records > 0 {
				bw.WriteByte(',')
			} else {
				rep.First = idx
			}
			buf = appendBundleRecord(buf[:0], &bundleRecord{Index: idx, Proof: proof, Record: data})
			bw.Write(buf)
			rep.Records++
		}
	}
	bw.WriteString(bundleTail)
	if err := bw.Flush(); err != nil {
		return rep, fmt.Errorf("write bundle: %w", err)
	}
	return rep, nil
}

// ExportFile is Export to the file at path, which holds either the whole
// bundle (mode 0644) or, if Export fails, what it held before.
func ExportFile(ctx context.Context, dataDir string, since time.Time, path string) (ExportReport, error) {
	var rep ExportReport
	err := atomicfile.Write(path, 0o644, true, func(w io.Writer) error {
		var err error
		rep, err = Export(ctx, dataDir, since, w)
		return err
	})
	return rep, err
}

// BundleReport describes a bundle that verified.
type BundleReport struct {
	Key        string
	Checkpoint Checkpoint
	Records    []BundleEntry
}

// A BundleEntry is one record of a bundle, proved to be in the log.
type BundleEntry struct {
	Index  int64
	Kind   Kind
	Logged time.Time
	Time   time.Time
	Body   json.RawMessage
}

// VerifyBundle checks a bundle with nothing but its own contents: the
// checkpoint's signature by the bundle's key, and each record's inclusion
// proof against the checkpoint. If key is not empty, the bundle must carry
// that key. It refuses a bundle that is not byte for byte what Export
// writes. Failures are *VerifyError (Table "bundle"; Row is the record's
// index or, for a bundle that does not decode, the byte offset).
func VerifyBundle(data []byte, key string) (*BundleReport, error) {
	if len(data) > MaxBundleBytes {
		return nil, tampered("bundle", -1, -1, "%d bytes, more than %d", len(data), MaxBundleBytes)
	}
	var b bundle
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		return nil, tampered("bundle", d.InputOffset(), -1, "not a bundle: %v", err)
	}
	// One spelling only: re-encode and compare.
	enc := appendBundleHead(make([]byte, 0, len(data)), b.Checkpoint, b.Key)
	for i := range b.Records {
		if i > 0 {
			enc = append(enc, ',')
		}
		enc = appendBundleRecord(enc, &b.Records[i])
	}
	enc = append(enc, bundleTail...)
	if !bytes.Equal(enc, data) {
		off := 0
		for off < len(enc) && off < len(data) && enc[off] == data[off] {
			off++
		}
		return nil, tampered("bundle", int64(off), -1, "byte %d differs from the bundle's canonical form", off)
	}
	if b.Format != bundleFormat {
		return nil, tampered("bundle", -1, -1, "format %q, want %q", b.Format, bundleFormat)
	}
	if key != "" && b.Key != key {
		return nil, tampered("bundle", -1, -1, "signed by %s, not by the key given (%s)", b.Key, key)
	}
	v, err := parseVerifierKey(b.Key)
	if err != nil {
		return nil, tampered("bundle", -1, -1, "%v", err)
	}
	cp, err := openCheckpoint([]byte(b.Checkpoint), v)
	if err != nil {
		return nil, tampered("bundle", -1, -1, "checkpoint: %v", err)
	}
	rep := &BundleReport{Key: b.Key, Checkpoint: cp, Records: make([]BundleEntry, 0, len(b.Records))}
	prev := int64(-1)
	for _, r := range b.Records {
		if r.Index <= prev || r.Index >= cp.Size {
			return nil, tampered("bundle", r.Index, r.Index, "record %d: out of order or not below the checkpoint's %d records", r.Index, cp.Size)
		}
		prev = r.Index
		lf, err := parseLeaf(r.Record)
		if err != nil {
			return nil, tampered("bundle", r.Index, r.Index, "record %d: %v", r.Index, err)
		}
		if lf.Index != r.Index {
			return nil, tampered("bundle", r.Index, r.Index, "record %d holds the record with index %d", r.Index, lf.Index)
		}
		if err := tlog.CheckRecord(r.Proof, cp.Size, cp.Root, r.Index, tlog.RecordHash(r.Record)); err != nil {
			return nil, tampered("bundle", r.Index, r.Index, "record %d is not in the checkpoint's tree: %v", r.Index, err)
		}
		rep.Records = append(rep.Records, BundleEntry{Index: lf.Index, Kind: lf.Kind, Logged: lf.Logged, Time: lf.Time, Body: lf.Body})
	}
	return rep, nil
}
