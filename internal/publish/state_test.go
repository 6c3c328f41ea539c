package publish

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func sampleState() *state {
	return &state{Version: stateVersion, Feeds: map[string]time.Time{"": time.Unix(1700000000, 0).UTC(), "show": time.Unix(1700000001, 0).UTC()},
		Items: []*item{
			{Path: "show/ep.mkv", Show: "show", Sig: signature{Size: 10, MTime: 1, CTime: 2, Ino: 3}, ID: "0123456789abcdef0123456789abcdef01234567",
				V1: "0123456789abcdef0123456789abcdef01234567", Name: "ep.mkv", TorrentBytes: 100, ContentBytes: 10, Magnet: "magnet:?", Published: time.Unix(1700000000, 0).UTC()},
			{Path: "show/ep2/", Show: "show", Dir: true, Sig: signature{Size: 10, Files: 2, Digest: "ab"}, ID: "1123456789abcdef0123456789abcdef01234567",
				V1: "1123456789abcdef0123456789abcdef01234567", Name: "ep2", Pending: true},
		}}
}

func TestStateRoundTrip(t *testing.T) {
	data, err := sampleState().marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseState(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Fatalf("state changed in a round trip:\n%s\n%s", data, again)
	}
}

// FuzzParseState checks that no state file, however damaged, makes the
// reader panic or accept an item the rest of the package cannot use, and
// that what it accepts writes back to the same bytes.
func FuzzParseState(f *testing.F) {
	good, _ := sampleState().marshal()
	f.Add(good)                                                   // as written
	f.Add(good[:len(good)/2])                                     // cut short
	f.Add([]byte("{}\nsha256 00\n"))                              // wrong checksum
	f.Add(bytes.Replace(good, []byte("show/"), []byte("../"), 1)) // a path out, checksum now wrong
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseState(data)
		if err != nil {
			if !errors.Is(err, errDamaged) {
				t.Fatalf("error %v does not wrap errDamaged", err)
			}
			return
		}
		for _, it := range s.Items {
			if err := it.check(); err != nil {
				t.Fatalf("accepted an item that does not check: %v", err)
			}
		}
		out, err := s.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseState(out); err != nil {
			t.Fatalf("what was accepted does not read back: %v", err)
		}
	})
}

// FuzzParseStateBody fuzzes the JSON under a valid checksum, which the
// fuzzer could not find by itself.
func FuzzParseStateBody(f *testing.F) {
	good, _ := sampleState().marshal()
	body, _, _ := cutChecksum(good)
	f.Add(body)
	f.Add([]byte(`{"version":1,"items":[null],"feeds":{}}` + "\n"))
	f.Add([]byte(`{"version":1,"items":[{"path":"a/b/c","show":"a","id":"` + "0123456789abcdef0123456789abcdef01234567" + `","v1":"x"}]}` + "\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		sum := sha256Hex(body)
		data := append(append([]byte{}, body...), checksumPrefix+sum+"\n"...)
		s, err := parseState(data)
		if err != nil {
			return
		}
		for _, it := range s.Items {
			if err := it.check(); err != nil {
				t.Fatalf("accepted an item that does not check: %v", err)
			}
			if _, err := it.hashes(); err != nil && it.V1 != "" && len(it.V1) == 40 {
				_ = err // a bad hash is reported when used, not a crash
			}
		}
	})
}
