package webseed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"warden/internal/httptracker"
	"warden/internal/limit"
)

// site is a web listener on a loopback socket over a content directory:
// ep.bin (300,007 random bytes), show/multi/{a,b}, a hidden file, a
// symbolic link inside and one out of the directory, a directory; a
// torrents directory with one file and a feeds directory with one feed.
type site struct {
	t       *testing.T
	srv     *Server
	base    string // http://127.0.0.1:PORT
	content string
	ep      []byte
	limiter *httptracker.ConnLimiter
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSite(t *testing.T, mod func(*Config, *Deps)) *site {
	t.Helper()
	root := t.TempDir()
	s := &site{t: t, content: filepath.Join(root, "content")}
	outside := filepath.Join(root, "outside")
	for _, d := range []string{s.content, outside, filepath.Join(s.content, "show", "multi"), filepath.Join(root, "torrents"), filepath.Join(root, "feeds")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.ep = make([]byte, 300_007)
	rand.NewChaCha8([32]byte{1}).Read(s.ep)
	files := map[string][]byte{
		"content/ep.bin":           s.ep,
		"content/show/multi/a":     []byte("aaaa"),
		"content/show/multi/b.mkv": []byte("bbbbbbbb"),
		"content/.secret":          []byte("hidden"),
		"outside/secret":           []byte("outside the content directory"),
		"torrents/abc.torrent":     []byte("d4:infod4:name1:xee"),
		"feeds/all.xml":            []byte("<rss/>"),
	}
	for rel, data := range files {
		if err := os.WriteFile(filepath.Join(root, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(s.content, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/secret", filepath.Join(s.content, "relout")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ep.bin", filepath.Join(s.content, "in")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ContentDir = s.content
	cfg.MaxBytesPerSec = 0
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	s.limiter = httptracker.LimitConns(ln, nil, httptracker.ConnLimits{Max: cfg.MaxConns, PerSource: cfg.MaxConnsPerSource, PerPrefix: cfg.MaxConnsPerPrefix})
	deps := Deps{
		Gate:  s.limiter,
		Dirs:  Dirs{Content: s.content, Torrents: filepath.Join(root, "torrents"), Feeds: filepath.Join(root, "feeds")},
		Limit: limit.DefaultConfig(),
	}
	if mod != nil {
		mod(&cfg, &deps)
	}
	s.srv, err = New(cfg, deps, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	s.base = "http://" + s.srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// raw sends one request exactly as written (no client-side cleaning of
// the path) and returns the response with its body read.
func (s *site) raw(method, path string, hdr ...string) (*http.Response, []byte) {
	s.t.Helper()
	c, err := net.Dial("tcp", s.srv.Addr().String())
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: x\r\n"
	for i := 0; i+1 < len(hdr); i += 2 {
		req += hdr[i] + ": " + hdr[i+1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return resp, body
}

func TestServeFiles(t *testing.T) {
	s := newSite(t, nil)
	whole, _ := s.raw("GET", "/content/ep.bin")
	etag := whole.Header.Get("ETag")
	lastMod := whole.Header.Get("Last-Modified")
	if etag == "" || lastMod == "" {
		t.Fatalf("no ETag (%q) or Last-Modified (%q)", etag, lastMod)
	}
	size := len(s.ep)
	tests := []struct {
		name, method, path string
		hdr                []string
		code               int
		body               []byte // nil: not checked
		headers            map[string]string
	}{
		{name: "whole file", method: "GET", path: "/content/ep.bin", code: 200, body: s.ep,
			headers: map[string]string{"Content-Length": strconv.Itoa(size), "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}},
		{name: "by type", method: "GET", path: "/content/show/multi/b.mkv", code: 200, body: []byte("bbbbbbbb"),
			headers: map[string]string{"Content-Type": "video/x-matroska"}},
		{name: "percent-encoded name", method: "GET", path: "/content/show/multi/%62.mkv", code: 200, body: []byte("bbbbbbbb")},
		{name: "head", method: "HEAD", path: "/content/ep.bin", code: 200, body: []byte{},
			headers: map[string]string{"Content-Length": strconv.Itoa(size), "ETag": etag}},
		{name: "range", method: "GET", path: "/content/ep.bin", hdr: []string{"Range", "bytes=1000-1999"}, code: 206, body: s.ep[1000:2000],
			headers: map[string]string{"Content-Range": fmt.Sprintf("bytes 1000-1999/%d", size), "Content-Length": "1000"}},
		{name: "open range", method: "GET", path: "/content/ep.bin", hdr: []string{"Range", "bytes=300000-"}, code: 206, body: s.ep[300000:]},
		{name: "suffix range", method: "GET", path: "/content/ep.bin", hdr: []string{"Range", "bytes=-7"}, code: 206, body: s.ep[size-7:]},
		{name: "range past the end", method: "GET", path: "/content/ep.bin", hdr: []string{"Range", fmt.Sprintf("bytes=%d-", size)}, code: 416,
			headers: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", size)}},
		{name: "if-none-match", method: "GET", path: "/content/ep.bin", hdr: []string{"If-None-Match", etag}, code: 304, body: []byte{}},
		{name: "if-none-match stale", method: "GET", path: "/content/ep.bin", hdr: []string{"If-None-Match", `"other"`}, code: 200, body: s.ep},
		{name: "if-modified-since", method: "GET", path: "/content/ep.bin", hdr: []string{"If-Modified-Since", lastMod}, code: 304},
		{name: "if-range current", method: "GET", path: "/content/ep.bin", hdr: []string{"Range", "bytes=0-9", "If-Range", etag}, code: 206, body: s.ep[:10]},
		{name: "if-range stale", method: "GET", path: "/content/ep.bin", hdr: []string{"Range", "bytes=0-9", "If-Range", `"old"`}, code: 200, body: s.ep},
		{name: "symlink inside", method: "GET", path: "/content/in", code: 200, body: s.ep},
		{name: "pad", method: "GET", path: "/content/show/multi/.pad/16380", code: 200, body: make([]byte, 16380),
			headers: map[string]string{"Content-Length": "16380"}},
		{name: "pad range", method: "GET", path: "/content/show/multi/.pad/16380", hdr: []string{"Range", "bytes=100-199"}, code: 206, body: make([]byte, 100)},
		{name: "pad of no directory", method: "GET", path: "/content/nothere/.pad/10", code: 404},
		{name: "pad of a file", method: "GET", path: "/content/ep.bin/.pad/10", code: 404},
		{name: "torrent", method: "GET", path: "/torrents/abc.torrent", code: 200, body: []byte("d4:infod4:name1:xee"),
			headers: map[string]string{"Content-Type": "application/x-bittorrent"}},
		{name: "feed", method: "GET", path: "/feeds/all.xml", code: 200, body: []byte("<rss/>"),
			headers: map[string]string{"Content-Type": "application/rss+xml; charset=utf-8", "Cache-Control": "no-cache"}},
		{name: "no pads among torrents", method: "GET", path: "/torrents/x/.pad/10", code: 404},
		{name: "missing", method: "GET", path: "/content/nope", code: 404},
		{name: "directory", method: "GET", path: "/content/show/multi", code: 404},
		{name: "not a file below a file", method: "GET", path: "/content/ep.bin/x", code: 404},
		{name: "other path", method: "GET", path: "/", code: 404},
		{name: "post", method: "POST", path: "/content/ep.bin", code: 405, headers: map[string]string{"Allow": "GET, HEAD"}},
		// Ways out of the directory, all 404 as if nothing were there.
		{name: "dot dot", method: "GET", path: "/content/../outside/secret", code: 404},
		{name: "dot dot encoded", method: "GET", path: "/content/%2e%2e/outside/secret", code: 404},
		{name: "slash encoded", method: "GET", path: "/content/show%2F..%2F..%2Foutside%2Fsecret", code: 404},
		{name: "dot dot deep", method: "GET", path: "/content/show/multi/../../../outside/secret", code: 404},
		{name: "absolute", method: "GET", path: "/content//etc/passwd", code: 404},
		{name: "backslash", method: "GET", path: "/content/..%5Coutside%5Csecret", code: 404},
		{name: "nul", method: "GET", path: "/content/ep.bin%00", code: 404},
		{name: "symlink out", method: "GET", path: "/content/out", code: 404},
		{name: "relative symlink out", method: "GET", path: "/content/relout", code: 404},
		{name: "hidden", method: "GET", path: "/content/.secret", code: 404},
		{name: "torrents dot dot", method: "GET", path: "/torrents/../content/ep.bin", code: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.raw(tt.method, tt.path, tt.hdr...)
			if resp.StatusCode != tt.code {
				t.Fatalf("%s %s: status %d, want %d (body %.80q)", tt.method, tt.path, resp.StatusCode, tt.code, body)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Fatalf("%s %s: %d bytes of body, want %d (or other bytes)", tt.method, tt.path, len(body), len(tt.body))
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s %s: %s = %q, want %q", tt.method, tt.path, k, got, v)
				}
			}
			if bytes.Contains(body, []byte("outside the content directory")) {
				t.Fatalf("%s %s: served a file outside the directory", tt.method, tt.path)
			}
		})
	}
	st := s.srv.Stats()
	if st.Requests["refused"] < 10 || st.Requests["partial"] < 5 || st.BytesSent == 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestETagChangesWithTheFile checks that a file replaced by one of the same
// size and modification time gets another ETag, so If-Range never joins
// ranges of two versions.
func TestETagChangesWithTheFile(t *testing.T) {
	s := newSite(t, nil)
	p := filepath.Join(s.content, "ep.bin")
	before, _ := s.raw("HEAD", "/content/ep.bin")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	tmp := p + ".new"
	other := bytes.Clone(s.ep)
	other[0] ^= 0xff
	if err := os.WriteFile(tmp, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	after, _ := s.raw("HEAD", "/content/ep.bin")
	if a, b := before.Header.Get("ETag"), after.Header.Get("ETag"); a == b {
		t.Fatalf("ETag %s unchanged after the file was replaced", a)
	}
	resp, body := s.raw("GET", "/content/ep.bin", "Range", "bytes=0-9", "If-Range", before.Header.Get("ETag"))
	if resp.StatusCode != 200 || !bytes.Equal(body, other) {
		t.Fatalf("If-Range with the old ETag: status %d, want 200 and the new file", resp.StatusCode)
	}
}

// TestGuardPerRequest checks that every request is charged to the guard: a
// source over its rate gets 429, and a banned one 403 and a closed
// connection.
func TestGuardPerRequest(t *testing.T) {
	lc := limit.DefaultConfig()
	lc.RatePerSec, lc.Burst = 1, 3
	lc.BanAfter, lc.BanWindow = 5, time.Minute
	lc.TableBytes = 1 << 20
	lc.MaxBans = 64
	guard, err := limit.NewGuard(lc, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, func(c *Config, d *Deps) { d.Guard = guard })
	var codes []int
	for range 12 {
		resp, _ := s.raw("GET", "/content/show/multi/a")
		codes = append(codes, resp.StatusCode)
	}
	// The burst, then limited, then banned (on the 5th drop, give or
	// take the prefix's drops) for good.
	got := fmt.Sprint(codes)
	if !strings.HasPrefix(got, "[200 200 200 429 429 429 429 ") || !strings.HasSuffix(got, " 403 403 403 403]") {
		t.Fatalf("statuses %s, want the burst, 429s, then 403s", got)
	}
	st := s.srv.Stats()
	if st.Requests["limited"]+st.Requests["banned"] != 9 || st.Requests["banned"] < 4 {
		t.Fatalf("stats %+v", st.Requests)
	}
}

// TestBandwidthCap checks that a source's replies are paced to its cap:
// 1 MiB at 1 MiB/s with a 64 KiB burst takes about a second, where
// without a cap it takes milliseconds.
func TestBandwidthCap(t *testing.T) {
	s := newSite(t, func(c *Config, d *Deps) {
		c.MaxBytesPerSec, c.BurstBytes = 1<<20, unit
		c.PrefixMaxBytesPerSec, c.PrefixBurstBytes = 4<<20, 4<<20
	})
	big := make([]byte, 1<<20)
	if err := os.WriteFile(filepath.Join(s.content, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, body := s.raw("GET", "/content/big")
	el := time.Since(start)
	if resp.StatusCode != 200 || len(body) != len(big) {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	// 15 units beyond the burst at 16 units a second.
	if el < 800*time.Millisecond || el > 5*time.Second {
		t.Fatalf("1 MiB at 1 MiB/s took %v, want about 0.94 s", el)
	}
	if s.srv.Stats().BandwidthWaits == 0 {
		t.Fatal("no bandwidth waits counted")
	}
	t.Logf("1 MiB at a 1 MiB/s cap in %v", el.Round(time.Millisecond))
}

// TestStalledReaderCutOff checks that a client that stops reading a large
// reply loses its connection after the stall timeout, rather than holding
// it (and its slot) forever.
func TestStalledReaderCutOff(t *testing.T) {
	s := newSite(t, func(c *Config, d *Deps) { c.StallTimeout = 300 * time.Millisecond })
	if err := os.WriteFile(filepath.Join(s.content, "huge"), make([]byte, 256<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(c, "GET /content/huge HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 4096)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.limiter.Stats().Open > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connection still open 10 s after the client stopped reading (%d bytes sent)", s.srv.Stats().BytesSent)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sent := s.srv.Stats().BytesSent; sent >= 256<<20 {
		t.Fatalf("sent %d bytes to a client that read 4 KiB", sent)
	}
}

// TestConnectionCapPerSource checks that the web listener shares its
// connection slots as the tracker's do: past max_conns_per_source, a
// source's new connections are closed at accept.
func TestConnectionCapPerSource(t *testing.T) {
	s := newSite(t, func(c *Config, d *Deps) {})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range DefaultConfig().MaxConnsPerSource {
		c, err := net.Dial("tcp", s.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.limiter.Stats().Open < uint64(len(held)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The listener resets the connection, then counts it: the client may
	// see the reset first, so the count is waited for.
	refused := func() bool {
		deadline := time.Now().Add(5 * time.Second)
		for s.limiter.Stats().Refused == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return s.limiter.Stats().Refused > 0
	}
	c, err := net.Dial("tcp", s.srv.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		if !refused() {
			t.Fatal("reset at connect, but no refused connection counted")
		}
		return // refused with a reset before the connect returned
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /content/show/multi/a HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := c.Read(make([]byte, 100)); err == nil {
		t.Fatalf("the %dth connection of one source was answered (%d bytes)", len(held)+1, n)
	}
	if !refused() {
		t.Fatal("no refused connection counted")
	}
}

// TestConfigValidate checks that bad [web] values are refused by key.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ok := DefaultConfig()
	ok.Listen, ok.ContentDir = "127.0.0.1:0", dir
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "defaults on", mod: func(c *Config) {}},
		{name: "off", mod: func(c *Config) { c.Listen, c.ContentDir = "", "" }},
		{name: "no content", mod: func(c *Config) { c.ContentDir = "" }, wantErr: "content_dir: must name"},
		{name: "content missing", mod: func(c *Config) { c.ContentDir = filepath.Join(dir, "x") }, wantErr: "content_dir: "},
		{name: "bad listen", mod: func(c *Config) { c.Listen = "nope" }, wantErr: "listen: must be host:port"},
		{name: "bad url", mod: func(c *Config) { c.PublicURL = "ftp://x" }, wantErr: "public_url: "},
		{name: "url with query", mod: func(c *Config) { c.PublicURL = "http://x/?a=b" }, wantErr: "public_url: "},
		{name: "stall zero", mod: func(c *Config) { c.StallTimeout = 0 }, wantErr: "stall_timeout: "},
		{name: "per source over prefix", mod: func(c *Config) { c.MaxConnsPerSource = 1000 }, wantErr: "max_conns_per_source: "},
		{name: "rate tiny", mod: func(c *Config) { c.MaxBytesPerSec = 10 }, wantErr: "max_bytes_per_sec: "},
		{name: "prefix under source", mod: func(c *Config) { c.PrefixMaxBytesPerSec = c.MaxBytesPerSec - 1 }, wantErr: "prefix_max_bytes_per_sec: "},
		{name: "burst tiny", mod: func(c *Config) { c.BurstBytes = 1 }, wantErr: "burst_bytes: "},
		{name: "caps off", mod: func(c *Config) { c.MaxBytesPerSec, c.BurstBytes = 0, 0 }},
		{name: "table tiny", mod: func(c *Config) { c.BandwidthTableBytes = 100 }, wantErr: "bandwidth_table_bytes: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
