package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		listen  string
		public  bool
		wantErr string
	}{
		{"127.0.0.1:7070", false, ""},
		{"[::1]:7070", false, ""},
		{"localhost:7070", false, ""},
		{"10.1.2.3:7070", false, ""},
		{"", false, ""},
		{":7070", false, "every interface"},
		{"0.0.0.0:7070", false, "every interface"},
		{"203.0.113.5:7070", false, "public address"},
		{"203.0.113.5:7070", true, ""},
		{":7070", true, ""},
		{"nonsense", false, "missing port"},
	}
	for _, tt := range tests {
		err := Config{Listen: tt.listen, AllowPublic: tt.public}.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Validate(%q, public=%v) = %v, want error containing %q", tt.listen, tt.public, err, tt.wantErr)
		}
	}
}

func TestEndpoints(t *testing.T) {
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, func() any { return map[string]int{"torrents": 3} }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for path, want := range map[string]string{"/healthz": `"ok"`, "/stats": `"torrents": 3`} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) || !json.Valid(body) {
			t.Errorf("GET %s = %d %s, want 200 JSON with %s", path, resp.StatusCode, body, want)
		}
	}
	resp, _ := http.Post(ts.URL+"/stats", "text/plain", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /stats = %d, want 405", resp.StatusCode)
	}
}
