package evidence

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"warden/internal/atomicfile"
)

// The files of the evidence log in the data directory.
const (
	DBFile  = "evidence.db"  // the log: records, tree hashes, checkpoints
	KeyFile = "evidence.key" // the signing key (mode 0600): whoever holds it can sign checkpoints
	PubFile = "evidence.pub" // the verifier key, public: give it to whoever checks the log
)

// keyName names the signer in every checkpoint's signature line.
const keyName = "warden-evidence"

// signingKey is the private signing key. It never reaches a log line:
// LogValue redacts it.
type signingKey struct {
	note.Signer
	vkey string // the matching verifier key
}

func (signingKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// loadOrCreateKey reads the signing key from dir, or, if there is none and
// create is set, generates one and writes it (mode 0600) with its verifier
// key (mode 0644). A crash while writing leaves either no key file or a
// whole one. It also rewrites a missing PubFile from the key.
func loadOrCreateKey(dir string, create bool) (signingKey, bool, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	created := false
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		skey, _, gerr := note.GenerateKey(rand.Reader, keyName)
		if gerr != nil {
			return signingKey{}, false, fmt.Errorf("generate signing key: %w", gerr)
		}
		if err := atomicfile.Write(path, 0o600, false, writeBytes([]byte(skey+"\n"))); err != nil {
			return signingKey{}, false, fmt.Errorf("write signing key: %w", err)
		}
		b, created = []byte(skey+"\n"), true
	case err != nil:
		return signingKey{}, false, fmt.Errorf("read signing key: %w", err)
	}
	skey := strings.TrimSuffix(string(b), "\n")
	s, err := note.NewSigner(skey)
	if err != nil {
		return signingKey{}, false, fmt.Errorf("signing key %s: %w", path, err)
	}
	vkey, err := verifierFromSigner(skey)
	if err != nil {
		return signingKey{}, false, fmt.Errorf("signing key %s: %w", path, err)
	}
	pub := filepath.Join(dir, PubFile)
	if _, err := os.Stat(pub); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.Write(pub, 0o644, false, writeBytes([]byte(vkey+"\n"))); err != nil {
			return signingKey{}, false, fmt.Errorf("write verifier key: %w", err)
		}
	}
	return signingKey{Signer: s, vkey: vkey}, created, nil
}

// verifierFromSigner derives the verifier key from a note signer key
// ("PRIVATE+KEY+name+hash+base64(alg || seed)").
func verifierFromSigner(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("malformed signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("not an Ed25519 signer key")
	}
	priv := ed25519.NewKeyFromSeed(key[1:])
	return note.NewEd25519VerifierKey(parts[2], priv.Public().(ed25519.PublicKey))
}

// ReadVerifierKey returns the verifier key in the data directory's PubFile.
func ReadVerifierKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, PubFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read verifier key: %w", err)
	}
	vkey := strings.TrimSpace(string(b))
	if _, err := parseVerifierKey(vkey); err != nil {
		return "", fmt.Errorf("verifier key %s: %w", path, err)
	}
	return vkey, nil
}

// parseVerifierKey parses a note verifier key ("name+hash+base64"),
// accepting only its canonical spelling (lowercase hash, strict base64),
// so one key has one text.
func parseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier key %q: %w", vkey, err)
	}
	name, rest, _ := strings.Cut(vkey, "+")
	hash, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.Strict().DecodeString(key64)
	if err != nil || name != v.Name() || hash != fmt.Sprintf("%08x", v.KeyHash()) ||
		base64.StdEncoding.EncodeToString(key) != key64 {
		return nil, fmt.Errorf("verifier key %q: %w", vkey, errNotCanonical)
	}
	return v, nil
}

// originFor is the first line of the checkpoints signed by v's key: it
// names the log, so a checkpoint of one log is never taken for another's.
func originFor(v interface{ KeyHash() uint32 }) string {
	return keyName + "/" + fmt.Sprintf("%08x", v.KeyHash())
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}
