package udptracker

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCookieLifetime(t *testing.T) {
	// The clock starts 30s into a window, so an ID issued then is valid
	// until the end of the next window, 90s later.
	tests := []struct {
		name  string
		after time.Duration
		from  netip.Addr
		want  bool
	}{
		{"at once", 0, src4.Addr(), true},
		{"same window", 29 * time.Second, src4.Addr(), true},
		{"next window", 31 * time.Second, src4.Addr(), true},
		{"end of next window", 90*time.Second - 1, src4.Addr(), true},
		{"two windows later", 90 * time.Second, src4.Addr(), false},
		{"much later", 24 * time.Hour, src4.Addr(), false},
		{"an hour earlier", -time.Hour, src4.Addr(), false},
		{"another IPv4", 0, src4b.Addr(), false},
		{"same IPv4, v4-mapped", 0, netip.AddrFrom16(src4.Addr().As16()), true},
		{"an IPv6", 0, src6.Addr(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			jar := newCookieJar(time.Hour, clk.now, nil, seededRandom(1))
			start := clk.now()
			id := jar.issue(src4.Addr(), jar.now())
			clk.set(start.Add(tt.after))
			if got := jar.valid(tt.from, id, jar.now()); got != tt.want {
				t.Errorf("issued to %v, checked from %v after %v: valid = %v, want %v", src4.Addr(), tt.from, tt.after, got, tt.want)
			}
		})
	}
}

func TestCookieEveryOffset(t *testing.T) {
	// Whatever the moment of issue, an ID works for at least one window
	// and at most two.
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, nil, seededRandom(1))
	base := clk.now().Truncate(cookieWindow)
	for off := time.Duration(0); off < cookieWindow; off += 7 * time.Second {
		clk.set(base.Add(off))
		id := jar.issue(src6.Addr(), jar.now())
		for _, after := range []time.Duration{0, cookieWindow - 1, 2*cookieWindow - off - 1} {
			clk.set(base.Add(off + after))
			if !jar.valid(src6.Addr(), id, jar.now()) {
				t.Errorf("issued at +%v: invalid after %v", off, after)
			}
		}
		clk.set(base.Add(2 * cookieWindow))
		if jar.valid(src6.Addr(), id, jar.now()) {
			t.Errorf("issued at +%v: still valid two windows on", off)
		}
	}
}

func TestCookieRotation(t *testing.T) {
	const rotation = 10 * time.Minute
	tests := []struct {
		name      string
		rotations int // how far the clock visits before the check
		want      bool
	}{
		{"no rotation", 0, true},
		{"survives one rotation", 1, true},
		{"not two rotations", 2, false},
		{"not three rotations", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			jar := newCookieJar(rotation, clk.now, nil, seededRandom(1))
			start := clk.now()
			id := jar.issue(src4.Addr(), jar.now())
			// Visit later periods so the keys rotate, then come back
			// within the ID's lifetime: only the key decides.
			for i := 1; i <= tt.rotations; i++ {
				clk.set(start.Add(time.Duration(i) * rotation))
				jar.valid(src4.Addr(), 0, jar.now())
			}
			clk.set(start.Add(10 * time.Second))
			if got := jar.valid(src4.Addr(), id, jar.now()); got != tt.want {
				t.Errorf("after %d rotations: valid = %v, want %v", tt.rotations, got, tt.want)
			}
		})
	}
}

func TestCookieAcrossRotationBoundary(t *testing.T) {
	const rotation = 2 * time.Minute // the minimum Validate allows
	clk := newFakeClock()
	jar := newCookieJar(rotation, clk.now, nil, seededRandom(1))
	boundary := clk.now().Truncate(rotation).Add(rotation)
	clk.set(boundary.Add(-time.Second))
	id := jar.issue(src4.Addr(), jar.now())
	clk.set(boundary.Add(30 * time.Second))
	if !jar.valid(src4.Addr(), id, jar.now()) {
		t.Errorf("ID issued 1s before a rotation is invalid 30s after it")
	}
	if fresh := jar.issue(src4.Addr(), jar.now()); fresh == id {
		t.Errorf("a new period issues the same ID %x", id)
	}
}

func TestCookieKeysDiffer(t *testing.T) {
	clk := newFakeClock()
	a := newCookieJar(time.Hour, clk.now, nil, nil)
	b := newCookieJar(time.Hour, clk.now, nil, nil)
	if b.valid(src4.Addr(), a.issue(src4.Addr(), a.now()), b.now()) {
		t.Errorf("a jar with another random key accepts the ID")
	}
}

func TestCookieKeyNotLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ks := &keySet{cur: sipKey{0x1111111111111111, 0x2222222222222222}}
	log.Info("oops", "cur", ks.cur, "prev", ks.prev)
	if strings.Contains(buf.String(), "1229782938247303441") || strings.Contains(buf.String(), "1111") || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log line %q shows a key", buf.String())
	}
}

func TestCookieAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, nil, nil)
	id := jar.issue(src6.Addr(), jar.now())
	if n := testing.AllocsPerRun(100, func() { jar.issue(src6.Addr(), jar.now()) }); n != 0 {
		t.Errorf("issue allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { jar.valid(src6.Addr(), id, jar.now()) }); n != 0 {
		t.Errorf("valid allocates %v times, want 0", n)
	}
}

func TestCookieSharedSecret(t *testing.T) {
	secretA := CookieSecret(bytes.Repeat([]byte{0xa5}, 32))
	secretB := CookieSecret(bytes.Repeat([]byte{0x5a}, 32))
	tests := []struct {
		name                 string
		issuer, checker      CookieSecret
		issuerRot, checkRot  time.Duration
		checkerStartsLater   time.Duration // the checker's jar is made this long after the ID is issued
		issueAt, checkOffset time.Duration // from the start of a rotation period
		want                 bool
	}{
		{name: "same secret", issuer: secretA, checker: secretA, want: true},
		{name: "same secret, checker new in the next period", issuer: secretA, checker: secretA,
			issueAt: time.Hour - 30*time.Second, checkOffset: time.Minute, checkerStartsLater: time.Minute, want: true},
		{name: "same secret, a window too late", issuer: secretA, checker: secretA,
			checkOffset: 2 * cookieWindow, want: false},
		{name: "other secret", issuer: secretA, checker: secretB, want: false},
		{name: "random issuer", issuer: nil, checker: secretA, want: false},
		{name: "random checker", issuer: secretA, checker: nil, want: false},
		{name: "other rotation", issuer: secretA, checker: secretA, checkRot: 2 * time.Hour, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			start := clk.now().Truncate(time.Hour)
			clk.set(start.Add(tt.issueAt))
			rot := func(d time.Duration) time.Duration {
				if d == 0 {
					return time.Hour
				}
				return d
			}
			issuer := newCookieJar(rot(tt.issuerRot), clk.now, tt.issuer, nil)
			id := issuer.issue(src4.Addr(), clk.now())
			clk.set(start.Add(tt.issueAt + tt.checkerStartsLater))
			checker := newCookieJar(rot(tt.checkRot), clk.now, tt.checker, nil)
			clk.set(start.Add(tt.issueAt + tt.checkOffset))
			if got := checker.valid(src4.Addr(), id, clk.now()); got != tt.want {
				t.Errorf("valid = %v, want %v", got, tt.want)
			}
			if got := checker.valid(src4b.Addr(), id, clk.now()); got {
				t.Errorf("valid from another address = true")
			}
		})
	}
}

// TestCookieSharedSecretRotates checks that derived keys change with the
// period like random ones, and that two jars agree in every period.
func TestCookieSharedSecretRotates(t *testing.T) {
	secret := CookieSecret(bytes.Repeat([]byte{1}, 32))
	clk := newFakeClock()
	a := newCookieJar(2*time.Minute, clk.now, secret, nil)
	b := newCookieJar(2*time.Minute, clk.now, secret, nil)
	first := a.issue(src6.Addr(), clk.now())
	for range 5 {
		clk.advance(2 * time.Minute)
		id := a.issue(src6.Addr(), clk.now())
		if id == first {
			t.Fatalf("a new period issues the same ID %x", id)
		}
		if !b.valid(src6.Addr(), id, clk.now()) {
			t.Fatalf("at %v, b rejects a's ID", clk.now())
		}
	}
}

func TestCookieSecretUnmarshalText(t *testing.T) {
	key := bytes.Repeat([]byte{0xfe}, 32)
	tests := []struct {
		name, text string
		want       []byte // nil with wantErr == "": no secret
		wantErr    string
	}{
		{name: "empty", text: ""},
		{name: "hex", text: strings.Repeat("fe", 32), want: key},
		{name: "hex upper", text: strings.Repeat("FE", 32), want: key},
		{name: "base64", text: "/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4=", want: key},
		{name: "base64 raw", text: "/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4", want: key},
		{name: "base64 url", text: "_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v4=", want: key},
		{name: "short hex", text: strings.Repeat("ab", 31), wantErr: "must be at least 32 bytes, got 31"},
		{name: "odd hex", text: strings.Repeat("ab", 32) + "a", wantErr: "must be hex or base64"},
		{name: "neither", text: "correct horse battery staple correct horse battery", wantErr: "must be hex or base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s CookieSecret
			err := s.UnmarshalText([]byte(tt.text))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("UnmarshalText(%q) = %v, want %q", tt.text, err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(s, tt.want) {
				t.Fatalf("UnmarshalText(%q) = %x, %v; want %x", tt.text, []byte(s), err, tt.want)
			}
		})
	}
}

// TestCookieSecretRedacted prints a Config holding a secret every way a
// config is likely to be printed and looks for the secret in any form.
func TestCookieSecretRedacted(t *testing.T) {
	secret := bytes.Repeat([]byte{0xc3}, 32)
	cfg := DefaultConfig()
	cfg.CookieSecret = CookieSecret(secret)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("starting", "config", cfg, "secret", cfg.CookieSecret)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("starting", "config", cfg, "secret", cfg.CookieSecret)
	marshalled, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"slog text": text.String(),
		"slog json": js.String(),
		"json":      string(marshalled),
		"%v":        fmt.Sprintf("%v", cfg),
		"%+v":       fmt.Sprintf("%+v", cfg),
		"%#v":       fmt.Sprintf("%#v", cfg),
		"%x":        fmt.Sprintf("%x", cfg.CookieSecret),
		//lint:ignore S1025 the %s verb itself is under test
		"%s": fmt.Sprintf("%s", cfg.CookieSecret),
	}
	forms := []string{hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)[:20], "195, 195", "0xc3, 0xc3", string(secret)}
	for how, out := range outputs {
		for _, f := range forms {
			if strings.Contains(out, f) {
				t.Errorf("%s shows the secret: %s", how, out)
			}
		}
		if !strings.Contains(out, "redacted") && how != "%x" {
			t.Errorf("%s does not say the secret is redacted: %s", how, out)
		}
	}
	if s := CookieSecret(nil).String(); s != "" {
		t.Errorf("no secret prints as %q, want \"\"", s)
	}
	var back CookieSecret
	if err := back.UnmarshalText([]byte(cfg.CookieSecret.String())); err == nil {
		t.Errorf("the redacted form reads back as a secret %x", []byte(back))
	}
}

func TestCookieSharedSecretAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, CookieSecret(bytes.Repeat([]byte{7}, 32)), nil)
	id := jar.issue(src4.Addr(), jar.now())
	if n := testing.AllocsPerRun(100, func() { jar.valid(src4.Addr(), id, jar.now()) }); n != 0 {
		t.Errorf("valid allocates %v times, want 0", n)
	}
}
