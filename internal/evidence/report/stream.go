package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"warden/internal/evidence"
)

// bundleHead is what a bundle says before its records.
type bundleHead struct {
	checkpoint, key, format string
}

// readBundle reads a bundle as evidence.Export streams it (its layout is
// documented in evidence's bundle.go) and hands each record to b, one at a
// time, so memory does not grow with the log. It does not check proofs:
// Export checked each before writing it.
func readBundle(r io.Reader, b *builder) (bundleHead, error) {
	var head bundleHead
	d := json.NewDecoder(r)
	if err := expectDelim(d, '{'); err != nil {
		return head, err
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return head, bundleErr(d, err)
		}
		key, _ := tok.(string)
		switch key {
		case "checkpoint":
			err = d.Decode(&head.checkpoint)
		case "key":
			err = d.Decode(&head.key)
		case "format":
			err = d.Decode(&head.format)
		case "records":
			err = readRecords(d, b)
		default:
			var skip json.RawMessage
			err = d.Decode(&skip)
		}
		if err != nil {
			return head, bundleErr(d, err)
		}
	}
	if err := expectDelim(d, '}'); err != nil {
		return head, err
	}
	return head, nil
}

func readRecords(d *json.Decoder, b *builder) error {
	if err := expectDelim(d, '['); err != nil {
		return err
	}
	for d.More() {
		var item struct {
			Index  int64           `json:"index"`
			Record json.RawMessage `json:"record"`
		}
		if err := d.Decode(&item); err != nil {
			return err
		}
		e, err := parseLeaf(item.Record)
		if err != nil {
			return fmt.Errorf("record %d: %w", item.Index, err)
		}
		if e.Index != item.Index {
			return fmt.Errorf("record %d holds index %d", item.Index, e.Index)
		}
		if err := b.add(e); err != nil {
			return err
		}
	}
	return expectDelim(d, ']')
}

// parseLeaf reads a record as the tree holds it:
// {"body":{…},"index":N,"kind":"…","logged":"…","time":"…"}.
func parseLeaf(data []byte) (evidence.BundleEntry, error) {
	var lf struct {
		Body   json.RawMessage `json:"body"`
		Index  *int64          `json:"index"`
		Kind   string          `json:"kind"`
		Logged time.Time       `json:"logged"`
		Time   time.Time       `json:"time"`
	}
	if err := json.Unmarshal(data, &lf); err != nil {
		return evidence.BundleEntry{}, err
	}
	if lf.Index == nil || lf.Kind == "" || len(lf.Body) == 0 || lf.Body[0] != '{' {
		return evidence.BundleEntry{}, errors.New("want body (an object), index and kind")
	}
	return evidence.BundleEntry{Index: *lf.Index, Kind: evidence.Kind(lf.Kind), Logged: lf.Logged, Time: lf.Time, Body: lf.Body}, nil
}

func expectDelim(d *json.Decoder, want json.Delim) error {
	tok, err := d.Token()
	if err != nil {
		return bundleErr(d, err)
	}
	if got, ok := tok.(json.Delim); !ok || got != want {
		return fmt.Errorf("bundle: offset %d: want %q, got %v", d.InputOffset(), want, tok)
	}
	return nil
}

func bundleErr(d *json.Decoder, err error) error {
	var tooLarge *tooLargeError
	if errors.As(err, &tooLarge) || errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("bundle: offset %d: %w", d.InputOffset(), err)
}

// tooLargeError is ErrTooLarge with where it happened.
type tooLargeError struct{ index int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("at record %d: %v", e.index, ErrTooLarge)
}

func (e *tooLargeError) Unwrap() error { return ErrTooLarge }
