package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Checkpoint is a signed statement of the log's state: the root hash of
// the Merkle tree over its first Size records, at a time. Its note text is
// the C2SP tlog-checkpoint layout (origin, size, root) with three
// extension lines:
//
//	warden-evidence/1a2b3c4d
//	1234
//	<base64 root hash>
//	time 2026-12-03T10:25:16.123Z
//	seq 57
//	prev <base64 SHA-256 of checkpoint 56's signed note>
//
// followed by the note's Ed25519 signature line (golang.org/x/mod/sumdb/note).
// Seq numbers every checkpoint from 1 and prev chains each to the one
// before (checkpoint 1 has none), so a checkpoint removed from the file is
// missed. Anyone holding an earlier checkpoint can ask for a consistency
// proof that the log only grew since.
type Checkpoint struct {
	Origin string    // names the log: "warden-evidence/" and the key's hash
	Size   int64     // records covered: indexes 0 to Size-1
	Root   tlog.Hash // tree hash of those records
	Time   time.Time // when it was signed (the log's clock, never earlier than the one before)
	Seq    int64     // 1 for the first checkpoint, then +1 each
	Prev   [sha256.Size]byte
	Note   []byte // the signed note, as stored and exported
}

// text returns the checkpoint's note text (without the signature).
func (c *Checkpoint) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%d\n%s\ntime %s\nseq %d\n", c.Origin, c.Size, c.Root, c.Time.UTC().Format(time.RFC3339Nano), c.Seq)
	if c.Seq > 1 {
		fmt.Fprintf(&b, "prev %s\n", base64.StdEncoding.EncodeToString(c.Prev[:]))
	}
	return b.String()
}

// sign signs c's text with s and sets c.Note.
func (c *Checkpoint) sign(s note.Signer) error {
	msg, err := note.Sign(&note.Note{Text: c.text()}, s)
	if err != nil {
		return fmt.Errorf("sign checkpoint %d: %w", c.Seq, err)
	}
	c.Note = msg
	return nil
}

// noteHash is what the next checkpoint's prev line holds.
func noteHash(msg []byte) [sha256.Size]byte { return sha256.Sum256(msg) }

// errCheckpoint marks a checkpoint that is malformed or not signed by the
// expected key.
var errCheckpoint = errors.New("bad checkpoint")

// openCheckpoint checks that msg is a checkpoint note signed by v, in the
// exact bytes warden writes (one signature line, canonical base64), and
// parses it.
func openCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	if len(msg) > 4096 {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes, longer than any warden writes", errCheckpoint, len(msg))
	}
	// note.Open skips repeated and unknown signatures and decodes base64
	// leniently; a stored checkpoint must have one spelling only.
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: no signature", errCheckpoint)
	}
	sigLine := string(msg[i+2:])
	line, ok := strings.CutSuffix(sigLine, "\n")
	name, b64, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if !ok || !strings.HasPrefix(line, "— ") || strings.Contains(line, "\n") || err != nil ||
		name != v.Name() || base64.StdEncoding.EncodeToString(sig) != b64 {
		return Checkpoint{}, fmt.Errorf("%w: want one signature line by %s", errCheckpoint, v.Name())
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", errCheckpoint, err)
	}
	c, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if want := originFor(v); c.Origin != want {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not this key's log (%q)", errCheckpoint, c.Origin, want)
	}
	c.Note = msg
	return c, nil
}

// parseCheckpointText parses a checkpoint's note text, accepting only the
// bytes text() writes.
func parseCheckpointText(text string) (Checkpoint, error) {
	bad := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", errCheckpoint, fmt.Sprintf(format, args...))
	}
	body, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return bad("text does not end in a newline")
	}
	lines := strings.Split(body, "\n")
	if len(lines) != 5 && len(lines) != 6 {
		return bad("want 5 or 6 lines, got %d", len(lines))
	}
	var c Checkpoint
	var err error
	c.Origin = lines[0]
	if c.Origin == "" {
		return bad("empty origin")
	}
	if c.Size, err = parseDecimal(lines[1]); err != nil {
		return bad("size: %v", err)
	}
	if c.Root, err = tlog.ParseHash(lines[2]); err != nil {
		return bad("root hash: %v", err)
	}
	ts, ok := strings.CutPrefix(lines[3], "time ")
	if !ok {
		return bad(`line 4: want "time T"`)
	}
	if c.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return bad("time: %v", err)
	}
	seq, ok := strings.CutPrefix(lines[4], "seq ")
	if !ok {
		return bad(`line 5: want "seq N"`)
	}
	if c.Seq, err = parseDecimal(seq); err != nil || c.Seq < 1 {
		return bad("seq %q: want a number from 1", seq)
	}
	if (c.Seq > 1) != (len(lines) == 6) {
		return bad("checkpoint %d: want a prev line if and only if seq > 1", c.Seq)
	}
	if c.Seq > 1 {
		p, ok := strings.CutPrefix(lines[5], "prev ")
		h, err := base64.StdEncoding.Strict().DecodeString(p)
		if !ok || err != nil || len(h) != sha256.Size {
			return bad(`line 6: want "prev" and a base64 SHA-256 hash`)
		}
		copy(c.Prev[:], h)
	}
	if c.text() != text {
		return bad("%v", errNotCanonical)
	}
	return c, nil
}

// parseDecimal parses a non-negative int64 written without sign or
// leading zeros.
func parseDecimal(s string) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	return n, nil
}
