package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"warden/internal/admin"
	"warden/internal/config"
	"warden/internal/evidence"
)

// TestDashboardConfigRedacted checks the configuration the dashboard
// shows: TOML keys as the operator writes them, and no secret (the UDP
// cookie secret, the webhook's secret, the path and query of its URL).
func TestDashboardConfigRedacted(t *testing.T) {
	const (
		cookieSecret  = "c00k1e-s3cret-c00k1e-s3cret-c00k1e-s3cret"
		webhookSecret = "w3bh00k-s3cret-value"
		hookPath      = "/hooks/T0KEN-IN-PATH"
	)
	cfg := config.Default()
	cfg.UDP.CookieSecret = []byte(cookieSecret)
	cfg.Alerts = evidence.AlertConfig{WebhookURL: "https://alerts.example.net" + hookPath + "?key=QUERYKEY", WebhookSecret: webhookSecret}
	tok := admin.Token("0123456789abcdef0123456789abcdef")
	srv := &server{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	d, err := srv.newDashboard(tok) // nothing of srv is read until the dashboard samples or logs in
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(d.Handler())
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {string(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(ts.URL + "/ui/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != 200 || !strings.Contains(body, `[udp]`) || !strings.Contains(body, `rate_per_sec = 50.0`) {
		t.Fatalf("overview = %d %.500s", resp.StatusCode, body)
	}
	for _, secret := range []string{cookieSecret, webhookSecret, hookPath, "QUERYKEY"} {
		if strings.Contains(body, secret) {
			t.Errorf("the dashboard's configuration shows %q", secret)
		}
	}
	if !strings.Contains(body, `https://alerts.example.net/[redacted]`) {
		t.Errorf("the webhook's host is not shown: %.2000s", body)
	}
}
