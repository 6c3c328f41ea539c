package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"warden/internal/bittorrent"
	"warden/internal/confkey"
	"warden/internal/registry"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
)

// newPolicyTracker returns a tracker in mode over a real registry holding
// n active torrents (swarmtest.Hash(0..n-1)) and one revoked one,
// swarmtest.Hash(-1).
func newPolicyTracker(tb testing.TB, mode Mode, n int) *Tracker {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	reg, err := registry.Open(filepath.Join(tb.TempDir(), "registry.db"), log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { reg.Close() })
	es := make([]registry.Entry, n+1)
	for i := range n {
		es[i] = registry.Entry{V1: swarmtest.Hash(i), Name: fmt.Sprint("t", i)}
	}
	es[n] = registry.Entry{V1: swarmtest.Hash(-1), Name: "revoked"}
	ctx := context.Background()
	if _, err := reg.AddMany(ctx, es, "test"); err != nil {
		tb.Fatal(err)
	}
	if _, err := reg.Revoke(ctx, swarmtest.Hash(-1), "license expired", "test"); err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Mode = mode
	cfg.AbuseContact = "abuse@example.org"
	return New(memswarm.New(swarmtest.Config()), reg, cfg, log)
}

func TestModes(t *testing.T) {
	const (
		tracked = "tracked"
		notReg  = "torrent not registered on this tracker; contact abuse@example.org"
		revoked = "revoked: license expired; contact abuse@example.org"
	)
	tests := []struct {
		mode                         Mode
		registered, unknown, revoked string
	}{
		{ModeAllowlist, tracked, notReg, revoked},
		{ModeDenylist, tracked, tracked, revoked},
		{ModeOpen, tracked, tracked, tracked},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			tr := newPolicyTracker(t, tt.mode, 3)
			for _, c := range []struct {
				ih   bittorrent.InfoHash
				want string
			}{{swarmtest.Hash(1), tt.registered}, {swarmtest.Hash(99), tt.unknown}, {swarmtest.Hash(-1), tt.revoked}} {
				var resp bittorrent.AnnounceResponse
				err := tr.Announce(context.Background(), swarmtest.Req(c.ih, swarmtest.Addr4(1), 0, bittorrent.EventStarted), &resp)
				got := tracked
				if err != nil {
					ref, ok := err.(*bittorrent.Refusal)
					if !ok {
						t.Fatalf("Announce error %T %v, want *bittorrent.Refusal", err, err)
					}
					if ref.Interval != tr.cfg.RefusalInterval {
						t.Fatalf("refusal interval %v, want %v", ref.Interval, tr.cfg.RefusalInterval)
					}
					got = ref.Reason
				}
				if got != c.want {
					t.Errorf("announce %v: got %q, want %q", c.ih, got, c.want)
				}
			}
		})
	}
}

func TestRefusedAnnounceIsNotStored(t *testing.T) {
	tr := newPolicyTracker(t, ModeAllowlist, 1)
	var resp bittorrent.AnnounceResponse
	for i := range 10 {
		tr.Announce(context.Background(), swarmtest.Req(swarmtest.Hash(1000+i), swarmtest.Addr4(i), 0, bittorrent.EventStarted), &resp)
	}
	if st := tr.Store().Stats(); st.Torrents != 0 {
		t.Fatalf("refused announces created swarms: %+v", st)
	}
}

// refusalLog is a RefusalSink that keeps what it is told.
type refusalLog []refusalEvent

type refusalEvent struct {
	ih  bittorrent.InfoHash
	src netip.Addr
	why RefusalKind
}

func (l *refusalLog) Refused(ih bittorrent.InfoHash, src netip.Addr, why RefusalKind, now time.Time) {
	*l = append(*l, refusalEvent{ih, src, why})
}

// TestRefusalsReported checks that every refused announce and scraped
// hash reaches the sink with its source and kind, and that nothing
// accepted does.
func TestRefusalsReported(t *testing.T) {
	tr := newPolicyTracker(t, ModeAllowlist, 1)
	var log refusalLog
	tr.ReportRefusals(&log)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	src := swarmtest.Addr4(7)
	tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(0), src, 0, bittorrent.EventStarted), &resp)    // registered
	tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(1000), src, 0, bittorrent.EventStarted), &resp) // unregistered
	tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(-1), src, 0, bittorrent.EventStarted), &resp)   // revoked
	tr.Scrape(ctx, src.Addr(), []bittorrent.InfoHash{swarmtest.Hash(0), swarmtest.Hash(1001)}, nil)
	want := refusalLog{
		{swarmtest.Hash(1000), src.Addr(), RefusedUnregistered},
		{swarmtest.Hash(-1), src.Addr(), RefusedRevoked},
		{swarmtest.Hash(1001), src.Addr(), RefusedUnregistered},
	}
	if !slices.Equal(log, want) {
		t.Fatalf("reported %+v, want %+v", log, want)
	}
}

func TestScrapeRevealsNothing(t *testing.T) {
	tr := newPolicyTracker(t, ModeAllowlist, 2)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	tr.Announce(ctx, swarmtest.Req(swarmtest.Hash(0), swarmtest.Addr4(1), 0, bittorrent.EventStarted), &resp)
	src := netip.MustParseAddr("10.9.9.9")

	got, err := tr.Scrape(ctx, src, []bittorrent.InfoHash{swarmtest.Hash(0), swarmtest.Hash(77)}, nil)
	if err != nil || len(got) != 2 || got[0].Complete != 1 || got[1] != (bittorrent.Scrape{InfoHash: swarmtest.Hash(77)}) {
		t.Fatalf("mixed scrape = %+v, %v; want counts for the registered one and zeros for the other", got, err)
	}
	_, err = tr.Scrape(ctx, src, []bittorrent.InfoHash{swarmtest.Hash(77), swarmtest.Hash(-1)}, nil)
	if ref, ok := err.(*bittorrent.Refusal); !ok || !strings.HasPrefix(ref.Reason, "torrent not registered") {
		t.Fatalf("scrape of only untracked hashes = %v, want the refusal", err)
	}
}

func TestRefusalAllocs(t *testing.T) {
	tr := newPolicyTracker(t, ModeAllowlist, 10)
	ctx := context.Background()
	var resp bittorrent.AnnounceResponse
	for _, ih := range []bittorrent.InfoHash{swarmtest.Hash(12345), swarmtest.Hash(-1)} {
		req := swarmtest.Req(ih, swarmtest.Addr4(1), 0, bittorrent.EventStarted)
		tr.Announce(ctx, req, &resp) // first time: caches the revoked message
		if n := testing.AllocsPerRun(1000, func() {
			if tr.Announce(ctx, req, &resp) == nil {
				t.Fatal("announce not refused")
			}
		}); n != 0 {
			t.Errorf("refusing %v allocates %v times per announce, want 0", ih, n)
		}
	}
}

var sinkErr error

// BenchmarkAnnounceModes compares the accept path in open and allowlist
// mode with the two refusal paths.
func BenchmarkAnnounceModes(b *testing.B) {
	const torrents = 10_000
	cases := []struct {
		name string
		mode Mode
		ih   func(i int) bittorrent.InfoHash
	}{
		{"open", ModeOpen, func(i int) bittorrent.InfoHash { return swarmtest.Hash(i % torrents) }},
		{"allowlist/accept", ModeAllowlist, func(i int) bittorrent.InfoHash { return swarmtest.Hash(i % torrents) }},
		{"allowlist/unregistered", ModeAllowlist, func(i int) bittorrent.InfoHash { return swarmtest.Hash(torrents + i%torrents) }},
		{"allowlist/revoked", ModeAllowlist, func(int) bittorrent.InfoHash { return swarmtest.Hash(-1) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			tr := newPolicyTracker(b, c.mode, torrents)
			reqs := make([]*bittorrent.AnnounceRequest, 4096)
			for i := range reqs {
				reqs[i] = swarmtest.Req(c.ih(i), swarmtest.Addr4(i%10), 1, bittorrent.EventNone)
			}
			var resp bittorrent.AnnounceResponse
			for _, r := range reqs { // fill the swarms first
				tr.Announce(context.Background(), r, &resp)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkErr = tr.Announce(context.Background(), reqs[i%len(reqs)], &resp)
				i++
			}
		})
	}
}

// countingRegistry counts Status calls.
type countingRegistry struct {
	*registry.Registry
	calls int
}

func (c *countingRegistry) Status(ih bittorrent.InfoHash) (bool, bool, string) {
	c.calls++
	return c.Registry.Status(ih)
}

// TestRegistryChangesApplyAtOnce: a torrent in steady use costs one
// registry check, not one per announce, and a revocation, a restore or a
// registration still applies to the very next announce.
func TestRegistryChangesApplyAtOnce(t *testing.T) {
	for _, mode := range []Mode{ModeAllowlist, ModeDenylist} {
		t.Run(mode.String(), func(t *testing.T) {
			reg := &countingRegistry{Registry: newPolicyTracker(t, mode, 1).reg.(*registry.Registry)}
			cfg := DefaultConfig()
			cfg.Mode = mode
			tr := New(memswarm.New(swarmtest.Config()), reg, cfg, slog.New(slog.DiscardHandler))
			ctx := context.Background()
			announce := func(ih bittorrent.InfoHash, peer int) error {
				var resp bittorrent.AnnounceResponse
				return tr.Announce(ctx, swarmtest.Req(ih, swarmtest.Addr4(peer), 1, bittorrent.EventNone), &resp)
			}
			wantRefusal := func(err error, prefix string) {
				t.Helper()
				if ref, ok := err.(*bittorrent.Refusal); !ok || !strings.HasPrefix(ref.Reason, prefix) {
					t.Fatalf("got %v, want a refusal starting %q", err, prefix)
				}
			}
			ih := swarmtest.Hash(0)
			for i := range 100 {
				if err := announce(ih, i); err != nil {
					t.Fatal(err)
				}
			}
			if reg.calls != 1 {
				t.Fatalf("100 announces of a registered torrent asked the registry %d times, want 1", reg.calls)
			}
			if _, err := reg.Revoke(ctx, ih, "withdrawn", "test"); err != nil {
				t.Fatal(err)
			}
			wantRefusal(announce(ih, 1), "revoked: withdrawn")
			wantRefusal(announce(ih, 2), "revoked: withdrawn")
			if _, err := reg.Restore(ctx, ih, "test"); err != nil {
				t.Fatal(err)
			}
			if err := announce(ih, 1); err != nil {
				t.Fatalf("after restore: %v", err)
			}
			if mode == ModeAllowlist {
				late := swarmtest.Hash(50)
				wantRefusal(announce(late, 1), "torrent not registered")
				if _, err := reg.Add(ctx, registry.Entry{V1: late}, "test"); err != nil {
					t.Fatal(err)
				}
				if err := announce(late, 1); err != nil {
					t.Fatalf("after registration: %v", err)
				}
			}
		})
	}
}

// TestAbuseContactValidate sets tracker.abuse_contact to what would break
// a refusal: control bytes end or garble a BEP 15 error's text (libtorrent
// stops at a NUL) and split a client's log line, invalid UTF-8 garbles a
// bencoded failure reason, and invisible format characters reorder or hide
// the text a user reads. Each must be refused with a confkey error naming
// the key; real contacts pass.
func TestAbuseContactValidate(t *testing.T) {
	tests := []struct {
		name, contact, wantErr string // wantErr "" means valid
	}{
		{"email", "abuse@example.org", ""},
		{"url", "https://example.org/abuse?lang=en#form", ""},
		{"name and email", "Équipe abus <abus@exemple.fr>", ""},
		{"not latin", "举报 abuse@example.cn", ""},
		{"empty", "", ""},
		{"NUL", "abuse@example.org\x00", "U+0000 at byte 17"},
		{"header injection", "abuse@example.org\r\nX-Evil: 1", "U+000D at byte 17"},
		{"newline", "abuse@\nexample.org", "U+000A at byte 6"},
		{"tab", "abuse\t@example.org", "U+0009 at byte 5"},
		{"escape sequence", "\x1b[31mabuse@example.org", "U+001B at byte 0"},
		{"DEL", "abuse@example.org\x7f", "U+007F"},
		{"C1 next line", "abuse@example.org\u0085", "U+0085"},
		{"invalid UTF-8", "abuse@ex\xffample.org", "not valid UTF-8 (byte 8 is 0xff)"},
		{"cut rune", "abuse@example.org\xc3", "not valid UTF-8 (byte 17 is 0xc3)"},
		{"bidi override", "\u202eabuse@example.org", "U+202E"},
		{"zero-width space", "abuse@\u200bexample.org", "U+200B"},
		{"byte order mark", "\ufeffabuse@example.org", "U+FEFF"},
		{"no-break space", "abuse\u00a0team", "U+00A0"},
		{"leading space", " abuse@example.org", "starts or ends with a space"},
		{"trailing space", "abuse@example.org ", "starts or ends with a space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.AbuseContact = tt.contact
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(abuse_contact %q) = %v, want nil", tt.contact, err)
				}
				return
			}
			var ce *confkey.Error
			if !errors.As(err, &ce) || ce.Key != "abuse_contact" || !strings.Contains(ce.Msg, tt.wantErr) {
				t.Fatalf("Validate(abuse_contact %q) = %v, want a confkey.Error for abuse_contact saying %q", tt.contact, err, tt.wantErr)
			}
		})
	}
}

// FuzzAbuseContact checks the property the validation promises: a contact
// that passes goes whole, and readable, into a refusal's text.
func FuzzAbuseContact(f *testing.F) {
	f.Add("abuse@example.org") // valid
	f.Add("a\x00b")            // NUL
	f.Add("\xff")              // invalid UTF-8
	f.Add("\u202eabuse")       // bidi override
	f.Fuzz(func(t *testing.T, s string) {
		if contactProblem(s) != "" {
			return
		}
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
			t.Fatalf("contact %q passed with a control character or invalid UTF-8", s)
		}
		r := newRefusals(s, time.Hour)
		if s != "" && !strings.HasSuffix(r.notRegistered.Reason, "; contact "+s) {
			t.Fatalf("refusal %q lacks the contact %q", r.notRegistered.Reason, s)
		}
	})
}
