package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/confkey"
)

// fixedCheckpoint is a Checkpointer that always returns one note.
type fixedCheckpoint struct{ note string }

func (f fixedCheckpoint) Checkpoint(context.Context) (Checkpoint, error) {
	return Checkpoint{Note: []byte(f.note)}, nil
}

const testSecret = "0123456789abcdef-secret"

// receiver is a webhook on loopback that checks each signature, failing
// the first fail requests with 503.
type receiver struct {
	srv   *httptest.Server
	fail  atomic.Int32
	mu    sync.Mutex
	got   []Alert
	bad   int
	tries atomic.Int32
	hold  chan struct{} // if not nil, each request waits on it
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.tries.Add(1)
		if r.hold != nil {
			<-r.hold
		}
		body, _ := io.ReadAll(req.Body)
		if r.fail.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if req.Header.Get(SignatureHeader) != Sign([]byte(testSecret), body) {
			r.bad++
			w.WriteHeader(http.StatusForbidden)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil {
			r.bad++
			return
		}
		r.got = append(r.got, a)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) alerts() ([]Alert, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.got...), r.bad
}

func startWebhook(t *testing.T, url string) *Webhook {
	t.Helper()
	w, err := NewWebhook(AlertConfig{WebhookURL: url, WebhookSecret: testSecret}, fixedCheckpoint{"cp-note\n"}, "http://127.0.0.1:7070/", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookSignedAndRetried: an alert arrives signed with the secret,
// with the checkpoint and the episode's link, after the receiver failed
// twice.
func TestWebhookSignedAndRetried(t *testing.T) {
	r := newReceiver(t)
	r.fail.Store(2)
	w := startWebhook(t, r.srv.URL)
	w.Alert(EventOpened, &Episode{ID: "E-1-198.51.100.7", Source: "198.51.100.7"})
	waitFor(t, 5*time.Second, func() bool { a, _ := r.alerts(); return len(a) == 1 })
	got, bad := r.alerts()
	if bad != 0 {
		t.Fatalf("%d alerts with a bad signature or body", bad)
	}
	a := got[0]
	if a.Event != EventOpened || a.Episode.ID != "E-1-198.51.100.7" || a.Checkpoint != "cp-note\n" ||
		a.Link != "http://127.0.0.1:7070/api/episodes/E-1-198.51.100.7" {
		t.Errorf("alert = %+v", a)
	}
	// The sender counts the alert sent once it has read the reply, which
	// may be just after the receiver has recorded it.
	waitFor(t, 5*time.Second, func() bool { return w.Stats().Sent == 1 })
	if st := w.Stats(); st.Sent != 1 || st.Retries != 2 || st.Failed != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestWebhookDeadReceiverNeverBlocks: with the receiver hanging, Alert
// returns at once, and what does not fit the queue is dropped and
// counted.
func TestWebhookDeadReceiverNeverBlocks(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	w := startWebhook(t, r.srv.URL)
	defer close(r.hold)
	const n = 10 * alertQueue
	start := time.Now()
	for range n {
		w.Alert(EventOpened, &Episode{ID: "E-1-x"})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("%d alerts took %v to queue", n, d)
	}
	st := w.Stats()
	if st.Dropped < n-alertQueue-1 {
		t.Errorf("dropped %d of %d, want at least %d", st.Dropped, n, n-alertQueue-1)
	}
}

func TestAlertConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  AlertConfig
		key  string // "" for valid
	}{
		{"none", AlertConfig{}, ""},
		{"ok", AlertConfig{WebhookURL: "https://example.net/hook", WebhookSecret: testSecret}, ""},
		{"secret without url", AlertConfig{WebhookSecret: testSecret}, "webhook_secret"},
		{"not http", AlertConfig{WebhookURL: "ftp://example.net/", WebhookSecret: testSecret}, "webhook_url"},
		{"no host", AlertConfig{WebhookURL: "http:///x", WebhookSecret: testSecret}, "webhook_url"},
		{"short secret", AlertConfig{WebhookURL: "http://example.net/", WebhookSecret: "short"}, "webhook_secret"},
		{"redacted secret", AlertConfig{WebhookURL: "http://example.net/", WebhookSecret: "[redacted]"}, "webhook_secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var ke *confkey.Error
			switch {
			case tt.key == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.key != "" && (!errors.As(err, &ke) || ke.Key != tt.key):
				t.Fatalf("Validate() = %v, want an error for %s", err, tt.key)
			}
		})
	}
}

// TestWebhookSecretRedacted: the secret never appears when the config is
// printed or encoded.
func TestWebhookSecretRedacted(t *testing.T) {
	c := AlertConfig{WebhookURL: "http://example.net/", WebhookSecret: testSecret}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, testSecret) {
		t.Errorf("JSON shows the secret: %s", s)
	}
}
