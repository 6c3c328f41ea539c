package evidence

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"warden/internal/confkey"
	"warden/internal/ratelog"
)

// AlertConfig is the [alerts] table: where to POST an alert when an
// episode opens or escalates.
type AlertConfig struct {
	// WebhookURL receives the alerts (http or https); "" sends none.
	WebhookURL string `toml:"webhook_url"`
	// WebhookSecret keys the HMAC-SHA256 of each body, sent as
	// X-Warden-Signature: sha256=HEX. Required with WebhookURL.
	WebhookSecret WebhookSecret `toml:"webhook_secret"`
}

// WebhookSecret is a secret string that redacts itself when printed,
// logged or encoded, so that the effective config can be shown.
type WebhookSecret string

const redactedSecret = "[redacted]"

func (s WebhookSecret) String() string {
	if s == "" {
		return ""
	}
	return redactedSecret
}

// LogValue redacts the secret in slog output.
func (s WebhookSecret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts the secret in JSON and TOML.
func (s WebhookSecret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText takes the secret as written.
func (s *WebhookSecret) UnmarshalText(b []byte) error { *s = WebhookSecret(b); return nil }

// minSecretLen is the shortest webhook secret accepted.
const minSecretLen = 16

// Validate returns a *confkey.Error naming the first setting that cannot
// work, by its key in the [alerts] table.
func (c AlertConfig) Validate() error {
	if c.WebhookURL == "" {
		if c.WebhookSecret != "" {
			return confkey.Errorf("webhook_secret", "is set but webhook_url is empty")
		}
		return nil
	}
	u, err := url.Parse(c.WebhookURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return confkey.Errorf("webhook_url", "must be an http or https URL, got %q", c.WebhookURL)
	}
	if len(c.WebhookSecret) < minSecretLen {
		return confkey.Errorf("webhook_secret", "must be at least %d bytes: the receiver checks each alert's HMAC with it", minSecretLen)
	}
	if string(c.WebhookSecret) == redactedSecret {
		return confkey.Errorf("webhook_secret", "is %q, which is how warden prints a secret: give the secret itself", redactedSecret)
	}
	return nil
}

// Alert is the JSON body POSTed to the webhook.
type Alert struct {
	// Event is EventOpened or EventEscalated.
	Event   string   `json:"event"`
	Episode *Episode `json:"episode"`
	// Link is the episode in the admin API.
	Link string `json:"link"`
	// Checkpoint is the latest signed checkpoint of the evidence log,
	// which covers the episode's record: a commitment the operator
	// cannot later contradict. It is the note text `warden evidence
	// checkpoint` prints.
	Checkpoint string    `json:"checkpoint"`
	Sent       time.Time `json:"sent"`
}

// SignatureHeader carries the HMAC-SHA256 of the raw body, "sha256=HEX".
const SignatureHeader = "X-Warden-Signature"

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Checkpointer gives the latest checkpoint covering every record appended
// so far: the Log.
type Checkpointer interface {
	Checkpoint(ctx context.Context) (Checkpoint, error)
}

// The webhook sender's schedule and bounds.
const (
	alertQueue   = 64                // alerts waiting; more are dropped and counted
	alertTimeout = 5 * time.Second   // for one POST
	alertTries   = 4                 // one and three retries,
	alertBackoff = 1 * time.Second   // after 1 s, 2 s, 4 s
	alertReplyN  = 4 << 10           // of the reply read, for the connection's reuse
	alertLinkMax = 2 << 10           // bytes of the admin base URL
	alertUA      = "warden-alerts/1" // User-Agent
)

// Webhook POSTs alerts from its own goroutine (Run), so that a dead or
// slow receiver never holds up the caller: Alert only queues, and drops
// (counted) when alertQueue wait. It implements Alerter.
type Webhook struct {
	url     string
	secret  []byte
	linkTo  string // the admin API's base URL, "" for a bare path
	cp      Checkpointer
	client  *http.Client
	log     *slog.Logger
	failLog *ratelog.Logger
	queue   chan queuedAlert
	backoff time.Duration

	sent, failed, dropped, retries atomic.Uint64
}

type queuedAlert struct {
	event string
	ep    *Episode
}

var _ Alerter = (*Webhook)(nil)

// NewWebhook returns a sender for cfg (which must have a URL) whose
// alerts carry cp's checkpoint and a link under adminBase (such as
// "http://127.0.0.1:7070"; "" gives the path alone). It starts nothing:
// call Run.
func NewWebhook(cfg AlertConfig, cp Checkpointer, adminBase string, log *slog.Logger) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WebhookURL == "" {
		return nil, confkey.Errorf("webhook_url", "is empty")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "alerts")
	return &Webhook{
		url:     cfg.WebhookURL,
		secret:  []byte(cfg.WebhookSecret),
		linkTo:  strings.TrimSuffix(adminBase, "/")[:min(len(strings.TrimSuffix(adminBase, "/")), alertLinkMax)],
		cp:      cp,
		client:  &http.Client{Timeout: alertTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:     log,
		failLog: ratelog.New(log, slog.LevelWarn, time.Minute, nil),
		queue:   make(chan queuedAlert, alertQueue),
		backoff: alertBackoff,
	}, nil
}

// Alert queues an alert; it never blocks.
func (w *Webhook) Alert(event string, ep *Episode) {
	select {
	case w.queue <- queuedAlert{event, ep}:
	default:
		w.dropped.Add(1)
		w.failLog.Log("alert dropped: the webhook is not keeping up", slog.String("episode", ep.ID))
	}
}

// Run sends the queued alerts until ctx is done; it returns nil.
func (w *Webhook) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-w.queue:
			w.send(ctx, a)
		}
	}
}

// send POSTs one alert, retrying with backoff on a network error or a
// reply other than 2xx.
func (w *Webhook) send(ctx context.Context, a queuedAlert) {
	body, err := w.body(ctx, a)
	if err != nil {
		w.failed.Add(1)
		w.failLog.Log("alert not sent", slog.String("episode", a.ep.ID), slog.Any("err", err))
		return
	}
	sig := Sign(w.secret, body)
	wait := w.backoff
	for try := 1; ; try++ {
		err = w.post(ctx, body, sig)
		if err == nil {
			w.sent.Add(1)
			w.log.Debug("alert sent", "episode", a.ep.ID, "event", a.event, "tries", try)
			return
		}
		if try == alertTries || ctx.Err() != nil {
			break
		}
		w.retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait *= 2
	}
	w.failed.Add(1)
	w.failLog.Log("alert not delivered", slog.String("episode", a.ep.ID), slog.String("url", w.url), slog.Any("err", err))
}

// body builds the alert's JSON, with a checkpoint covering the episode's
// record.
func (w *Webhook) body(ctx context.Context, a queuedAlert) ([]byte, error) {
	al := Alert{Event: a.event, Episode: a.ep, Link: w.linkTo + "/api/episodes/" + url.PathEscape(a.ep.ID), Sent: time.Now().UTC()}
	if w.cp != nil {
		cp, err := w.cp.Checkpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		al.Checkpoint = string(cp.Note)
	}
	return json.Marshal(al)
}

func (w *Webhook) post(ctx context.Context, body []byte, sig string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", alertUA)
	req.Header.Set(SignatureHeader, sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, alertReplyN))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// AlertStats are the webhook's counters since start.
type AlertStats struct {
	Sent    uint64 `json:"sent"`
	Failed  uint64 `json:"failed"`  // given up after every retry
	Retries uint64 `json:"retries"` // POSTs tried again
	Dropped uint64 `json:"dropped"` // not queued: the receiver is not keeping up
	Queued  int    `json:"queued"`
}

// Stats returns the counters.
func (w *Webhook) Stats() AlertStats {
	return AlertStats{Sent: w.sent.Load(), Failed: w.failed.Load(), Retries: w.retries.Load(),
		Dropped: w.dropped.Load(), Queued: len(w.queue)}
}
