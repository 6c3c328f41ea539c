package evidence

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testKey returns a signer and its verifier.
func testKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, keyName)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseVerifierKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestCheckpointRoundTrip(t *testing.T) {
	s, v := testKey(t)
	first := Checkpoint{Origin: originFor(v), Size: 0, Root: tlog.RecordHash(nil), Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Seq: 1}
	if err := first.sign(s); err != nil {
		t.Fatal(err)
	}
	second := Checkpoint{Origin: originFor(v), Size: 1234, Root: tlog.RecordHash([]byte("x")), Time: first.Time.Add(1500 * time.Millisecond), Seq: 2, Prev: noteHash(first.Note)}
	if err := second.sign(s); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Checkpoint{first, second} {
		got, err := openCheckpoint(c.Note, v)
		if err != nil {
			t.Fatalf("openCheckpoint(%q) = %v", c.Note, err)
		}
		if got.Size != c.Size || got.Root != c.Root || !got.Time.Equal(c.Time) || got.Seq != c.Seq || got.Prev != c.Prev || got.Origin != c.Origin {
			t.Fatalf("openCheckpoint = %+v, want %+v", got, c)
		}
	}
	if !strings.HasPrefix(string(second.Note), originFor(v)+"\n1234\n") || !strings.Contains(string(second.Note), "\nseq 2\nprev ") {
		t.Errorf("checkpoint text:\n%s", second.Note)
	}

	_, other := testKey(t)
	msg := string(second.Note)
	sigAt := strings.LastIndex(msg, "\n\n") + 2
	tests := []struct {
		name string
		msg  string
		v    note.Verifier
	}{
		{name: "another key", msg: msg, v: other},
		{name: "text changed", msg: strings.Replace(msg, "\n1234\n", "\n1235\n", 1), v: v},
		{name: "signature twice", msg: msg + msg[sigAt:], v: v},
		{name: "no signature", msg: msg[:sigAt], v: v},
		{name: "signature base64 respelled", msg: msg[:len(msg)-3] + string(msg[len(msg)-3]^1) + msg[len(msg)-2:], v: v},
		{name: "too long", msg: strings.Repeat("x", 5000), v: v},
	}
	for _, tt := range tests {
		if _, err := openCheckpoint([]byte(tt.msg), tt.v); !errors.Is(err, errCheckpoint) {
			t.Errorf("%s: openCheckpoint = %v, want errCheckpoint", tt.name, err)
		}
	}
}

func TestParseCheckpointText(t *testing.T) {
	root := tlog.RecordHash(nil).String()
	good := "warden-evidence/01020304\n5\n" + root + "\ntime 2026-12-03T10:00:00Z\nseq 1\n"
	if _, err := parseCheckpointText(good); err != nil {
		t.Fatalf("parseCheckpointText(%q) = %v", good, err)
	}
	tests := []struct{ name, text string }{
		{"no final newline", strings.TrimSuffix(good, "\n")},
		{"leading zero", strings.Replace(good, "\n5\n", "\n05\n", 1)},
		{"signed size", strings.Replace(good, "\n5\n", "\n+5\n", 1)},
		{"huge size", strings.Replace(good, "\n5\n", "\n99999999999999999999\n", 1)},
		{"bad root", strings.Replace(good, root, "AAAA", 1)},
		{"local time", strings.Replace(good, "10:00:00Z", "11:00:00+01:00", 1)},
		{"seq 0", strings.Replace(good, "seq 1", "seq 0", 1)},
		{"seq 2 without prev", strings.Replace(good, "seq 1", "seq 2", 1)},
		{"prev on seq 1", good + "prev " + root + "\n"},
		{"extra line", good + "x\n"},
		{"empty origin", strings.Replace(good, "warden-evidence/01020304", "", 1)},
	}
	for _, tt := range tests {
		if _, err := parseCheckpointText(tt.text); !errors.Is(err, errCheckpoint) {
			t.Errorf("%s: parseCheckpointText(%q) = %v, want errCheckpoint", tt.name, tt.text, err)
		}
	}
}

func FuzzParseCheckpointText(f *testing.F) {
	root := tlog.RecordHash(nil).String()
	f.Add("warden-evidence/01020304\n5\n" + root + "\ntime 2026-12-03T10:00:00.5Z\nseq 1\n")                  // first checkpoint
	f.Add("warden-evidence/01020304\n5\n" + root + "\ntime 2026-12-03T10:00:00Z\nseq 9\nprev " + root + "\n") // later one
	f.Add("o\n0\n\ntime \nseq \n")                                                                            // empty fields
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseCheckpointText(text)
		if err != nil {
			return
		}
		if got := c.text(); got != text {
			t.Fatalf("parseCheckpointText accepted %q, which prints as %q", text, got)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	// One key for every fuzzing process.
	skey, vkey, err := note.GenerateKey(bytes.NewReader(make([]byte, 32)), keyName)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, err := parseVerifierKey(vkey)
	if err != nil {
		f.Fatal(err)
	}
	c := Checkpoint{Origin: originFor(v), Size: 3, Root: tlog.RecordHash(nil), Time: time.Unix(1_800_000_000, 0).UTC(), Seq: 2}
	if err := c.sign(s); err != nil {
		f.Fatal(err)
	}
	f.Add(c.Note)                                  // a good checkpoint
	f.Add([]byte("x\n\n— warden-evidence AAAA\n")) // a bad signature
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := openCheckpoint(msg, v)
		if err != nil {
			if !errors.Is(err, errCheckpoint) {
				t.Fatalf("openCheckpoint = %v, want errCheckpoint", err)
			}
			return
		}
		// Only what was signed opens, and it reads back as signed.
		if again := got; again.sign(s) != nil || !bytes.Equal(again.Note, msg) {
			t.Fatalf("openCheckpoint accepted %q, which signs as %q", msg, again.Note)
		}
	})
}
