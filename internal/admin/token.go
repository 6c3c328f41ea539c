package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the name of the admin token file in the data directory.
const TokenFile = "admin.token"

// TokenEnv names the environment variable that overrides the token file.
const TokenEnv = "WARDEN_TOKEN"

// minTokenLen keeps a guessable token from being used.
const minTokenLen = 16

// Token is the bearer token of the admin API. It never prints itself.
type Token string

// String redacts the token, so it cannot leak through %v or a log line.
func (t Token) String() string { return "[redacted]" }

// LogValue redacts the token in slog output.
func (t Token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Matches reports, in constant time, whether got is the token (the
// dashboard's login asks it).
func (t Token) Matches(got string) bool { return t.matches(got) }

func (t Token) matches(got string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(got)) == 1
}

// LoadOrCreateToken returns the token from $WARDEN_TOKEN if set, else from
// DIR/admin.token, creating that file (mode 0600) with a random token on
// first start. created reports whether a new file was written.
func LoadOrCreateToken(dir string) (tok Token, created bool, err error) {
	if env := os.Getenv(TokenEnv); env != "" {
		if len(env) < minTokenLen {
			return "", false, fmt.Errorf("%s: at least %d characters required", TokenEnv, minTokenLen)
		}
		return Token(env), false, nil
	}
	path := filepath.Join(dir, TokenFile)
	if tok, err := ReadToken(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, false, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	text := hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("create admin token: %w", err)
	}
	if _, err := f.WriteString(text + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return Token(text), true, nil
}

// ReadToken reads a token file. It refuses a file others can read, since
// the token grants control of the registry.
func ReadToken(path string) (Token, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin token %s: mode %v lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("admin token %s: shorter than %d characters", path, minTokenLen)
	}
	return Token(tok), nil
}
