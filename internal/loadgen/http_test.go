package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckHTTPAnnounce(t *testing.T) {
	tests := []struct {
		name, body  string
		numWant     int
		wantFailure string
		wantBad     badReason
		wantOK      bool
	}{
		{"compact", "d8:completei1e10:incompletei2e8:intervali1800e5:peers12:abcdefghijkle", 50, "", 0, true},
		{"empty peers", "d8:intervali1800e5:peers0:e", 50, "", 0, true},
		{"peers6", "d8:intervali1800e6:peers618:abcdefghijklmnopqre", 50, "", 0, true},
		{"dict peers", "d8:intervali1800e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eeee", 50, "", 0, true},
		{"failure", "d14:failure reason22:torrent not registerede", 50, "torrent not registered", 0, true},
		{"partial peer", "d8:intervali1800e5:peers7:abcdefge", 50, "", badLength, false},
		{"too many", "d8:intervali1800e5:peers12:abcdefghijkle", 1, "", badPeers, false},
		{"numwant default", "d8:intervali1800e5:peers12:abcdefghijkle", -1, "", 0, true},
		{"no interval", "d5:peers0:e", 50, "", badInterval, false},
		{"zero interval", "d8:intervali0e5:peers0:e", 50, "", badInterval, false},
		{"no peers", "d8:intervali1800ee", 50, "", badBencode, false},
		{"unsorted keys", "d5:peers0:8:intervali1800ee", 50, "", badBencode, false},
		{"trailing", "d8:intervali1800e5:peers0:ex", 50, "", badBencode, false},
		{"html", "<html>busy</html>", 50, "", badBencode, false},
		{"dict peer without port", "d8:intervali1800e5:peersld2:ip1:xeee", 50, "", badBencode, false},
	}
	for _, tt := range tests {
		failure, bad, ok := checkHTTPAnnounce([]byte(tt.body), tt.numWant)
		if failure != tt.wantFailure || bad != tt.wantBad || ok != tt.wantOK {
			t.Errorf("%s: checkHTTPAnnounce(%q) = %q, %v, %v; want %q, %v, %v", tt.name, tt.body, failure, bad, ok, tt.wantFailure, tt.wantBad, tt.wantOK)
		}
	}
	scrapes := []struct {
		body   string
		hashes int
		want   badReason
		wantOK bool
	}{
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1e10:downloadedi0e10:incompletei2eeee", 1, 0, true},
		{"d5:filesdee", 1, 0, true}, // unknown hashes may be left out
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1e10:downloadedi0e10:incompletei2ee20:bbbbbbbbbbbbbbbbbbbbd8:completei1e10:downloadedi0e10:incompletei2eeee", 1, badLength, false},
		{"d5:filesd3:abcd8:completei1e10:downloadedi0e10:incompletei2eeee", 1, badBencode, false},
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1eeee", 1, badBencode, false},
		{"de", 1, badBencode, false},
	}
	for _, tt := range scrapes {
		_, bad, ok := checkHTTPScrape([]byte(tt.body), tt.hashes)
		if bad != tt.want || ok != tt.wantOK {
			t.Errorf("checkHTTPScrape(%q) = %v, %v; want %v, %v", tt.body, bad, ok, tt.want, tt.wantOK)
		}
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name, in   string
		wantStatus int
		wantKeep   bool
		wantBody   string
		wantErr    string
		keepBody   int
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 200, true, "abc", "", 0},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", 200, false, "abc", "", 0},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc", 200, true, "abc", "", 0},
		{"close", "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nabc", 200, false, "abc", "", 0},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x=y\r\nc\r\n0\r\nTrailer: z\r\n\r\n", 200, true, "abc", "", 0},
		{"to eof", "HTTP/1.1 200 OK\r\n\r\nabc", 200, false, "abc", "", 0},
		{"404", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404, true, "", "", 0},
		{"no status", "garbage\r\n\r\n", 0, false, "", "malformed http reply: status line", 0},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0, false, "", "malformed http reply: content-length", 0},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", 0, false, "", "malformed http reply: body too large", 0},
		{"cut body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", 0, false, "", "unexpected EOF", 0},
		{"header line", "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", 0, false, "", "malformed http reply: header line", 0},
		{"long header", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", httpBufSize) + "\r\n\r\n", 0, false, "", "malformed http reply: header line too long", 0},
		{"status letters", "HTTP/1.1 2x0 OK\r\n\r\n", 0, false, "", "malformed http reply: status code", 0},
		{"length sign", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", 0, false, "", "malformed http reply: content-length", 0},
		{"length over 2^31", "HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n", 0, false, "", "malformed http reply: content-length", 0},
		{"chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, false, "", "malformed http reply: chunk size", 0},
		{"chunks too large", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n", 0, false, "", "malformed http reply: body too large", 0},
		{"to eof too large", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("a", maxHTTPBody+1), 0, false, "", "malformed http reply: body too large", 0},
		{"to eof at the limit", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("a", maxHTTPBody), 200, false, strings.Repeat("a", maxHTTPBody), "", 0},
		// keepBody: a prefix is kept, the rest read and dropped, so the
		// next response on the connection is found.
		{"keep prefix", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef", 200, true, "abcd", "", 4},
		{"keep prefix cut", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabcdef", 0, false, "", "unexpected EOF", 4},
		{"keep prefix chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 200, true, "abcd", "", 4},
		{"keep prefix to eof", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("a", maxHTTPBody), 200, false, "aaaa", "", 4},
		{"keep prefix to eof too large", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("a", maxHTTPBody+1), 0, false, "", "malformed http reply: body too large", 4},
	}
	for _, tt := range tests {
		w := &httpWorker{br: bufio.NewReaderSize(strings.NewReader(tt.in), httpBufSize), keepBody: tt.keepBody}
		status, keep, err := w.readResponse()
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if status != tt.wantStatus || keep != tt.wantKeep || gotErr != tt.wantErr || (err == nil && string(w.body) != tt.wantBody) {
			t.Errorf("%s: readResponse = %d, %v, %q, %v; want %d, %v, %q, %q", tt.name, status, keep, w.body, err, tt.wantStatus, tt.wantKeep, tt.wantBody, tt.wantErr)
		}
	}
	// Two responses on one connection.
	w := &httpWorker{br: bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nbc"))}
	for _, want := range []string{"a", "bc"} {
		if _, keep, err := w.readResponse(); err != nil || !keep || string(w.body) != want {
			t.Errorf("pipelined: %q, %v, %v; want %q", w.body, keep, err, want)
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	in := []byte{0, 'a', 'Z', '9', '-', '.', '_', '~', ' ', '%', 0xff}
	got := string(appendEscaped(nil, in))
	want := "%00aZ9-._~%20%25%FF"
	if got != want {
		t.Errorf("appendEscaped = %q, want %q", got, want)
	}
	if back, _ := url.QueryUnescape(got); back != string(in) {
		t.Errorf("QueryUnescape(%q) = %q, want %q", got, back, in)
	}
}

// fakeHTTP is a tracker on 127.0.0.1:0 served by net/http.
type fakeHTTP struct {
	srv     *httptest.Server
	mu      sync.Mutex
	sources map[netip.Addr]bool // guarded by mu
	conns   atomic.Int64
}

func newFakeHTTP(t *testing.T, announce func(w http.ResponseWriter, q url.Values)) *fakeHTTP {
	t.Helper()
	f := &fakeHTTP{sources: map[netip.Addr]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/announce", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.sources[netip.MustParseAddrPort(r.RemoteAddr).Addr()] = true
		f.mu.Unlock()
		q := r.URL.Query()
		if len(q.Get("info_hash")) != 20 || len(q.Get("peer_id")) != 20 || q.Get("port") == "" || q.Get("compact") != "1" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		announce(w, q)
	})
	mux.HandleFunc("/scrape", func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		b.WriteString("d5:filesd")
		for _, ih := range r.URL.Query()["info_hash"] { // sorted input not needed for one hash
			fmt.Fprintf(&b, "20:%sd8:completei1e10:downloadedi0e10:incompletei2ee", ih)
		}
		b.WriteString("ee")
		w.Write([]byte(b.String()))
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func testHTTPConfig(url string) Config {
	cfg := testUDPConfig("")
	cfg.Protocol, cfg.UDP, cfg.HTTP = HTTP, "", url
	cfg.Rate = 2000
	return cfg
}

func TestRunHTTP(t *testing.T) {
	f := newFakeHTTP(t, func(w http.ResponseWriter, q url.Values) {
		w.Write([]byte("d8:intervali1800e5:peers12:abcdefghijkle"))
	})
	cfg := testHTTPConfig(f.srv.URL + "/announce")
	cfg.Scenario = ScenarioMixed
	cfg.Sources = netip.MustParsePrefix("127.4.0.0/24")
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, rep)
	ann, scr, conn := rep.Class("announce/legit"), rep.Class("scrape/legit"), rep.Class("connect")
	if ann == nil || scr == nil || conn == nil || ann.OK == 0 || ann.OK != ann.Sent || scr.OK != scr.Sent {
		t.Fatalf("report %+v, want announces and scrapes all OK", rep.Classes)
	}
	if conn.OK != uint64(cfg.Workers) || f.conns.Load() != int64(cfg.Workers) {
		t.Errorf("%d connections counted, %d seen by the server; want %d kept alive", conn.OK, f.conns.Load(), cfg.Workers)
	}
	f.mu.Lock()
	nsrc := len(f.sources)
	f.mu.Unlock()
	if nsrc != cfg.Workers {
		t.Errorf("server saw %d sources, want %d", nsrc, cfg.Workers)
	}
	if tot := rep.Total(); tot.Sent == 0 || float64(tot.Sent) > 1.2*cfg.Rate*cfg.Duration.Seconds()+float64(cfg.Workers) {
		t.Errorf("sent %d in %v at %v/s, want at most about %v", tot.Sent, cfg.Duration, cfg.Rate, cfg.Rate*cfg.Duration.Seconds())
	}
}

func TestRunHTTPSpoiled(t *testing.T) {
	tests := []struct {
		name    string
		lossy   bool
		handler func(w http.ResponseWriter, q url.Values)
		check   func(t *testing.T, ann *ClassReport, conn *ClassReport)
	}{
		{
			name: "failure reason",
			handler: func(w http.ResponseWriter, q url.Values) {
				w.Write([]byte("d14:failure reason22:torrent not registerede"))
			},
			check: func(t *testing.T, ann, _ *ClassReport) {
				if ann.Failures != ann.Sent || ann.TopFailures[0].Message != "torrent not registered" {
					t.Errorf("failures %d of %d: %v", ann.Failures, ann.Sent, ann.TopFailures)
				}
			},
		},
		{
			name: "status 503",
			handler: func(w http.ResponseWriter, q url.Values) {
				http.Error(w, "busy", http.StatusServiceUnavailable)
			},
			check: func(t *testing.T, ann, _ *ClassReport) {
				if ann.Bad != ann.Sent || ann.BadReasons[0].Message != "http status" {
					t.Errorf("bad %d of %d: %v", ann.Bad, ann.Sent, ann.BadReasons)
				}
			},
		},
		{
			name: "garbage, then close",
			handler: func(w http.ResponseWriter, q url.Values) {
				w.Header().Set("Connection", "close")
				w.Write([]byte("<html>"))
			},
			check: func(t *testing.T, ann, conn *ClassReport) {
				if ann.Bad != ann.Sent || ann.BadReasons[0].Message != "bad bencode" {
					t.Errorf("bad %d of %d: %v", ann.Bad, ann.Sent, ann.BadReasons)
				}
				if conn.OK < ann.Sent {
					t.Errorf("%d connections for %d requests; want one each after Connection: close", conn.OK, ann.Sent)
				}
			},
		},
		{
			name:  "slow",
			lossy: true,
			handler: func(w http.ResponseWriter, q url.Values) {
				time.Sleep(2 * lossTimeout)
			},
			check: func(t *testing.T, ann, _ *ClassReport) {
				if ann.Timeouts != ann.Sent {
					t.Errorf("timeouts %d of %d", ann.Timeouts, ann.Sent)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHTTP(t, tt.handler)
			cfg := testHTTPConfig(f.srv.URL + "/announce")
			cfg.Duration = 250 * time.Millisecond
			if tt.lossy {
				cfg.Timeout = lossTimeout
			}
			rep, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, rep)
			ann, conn := rep.Class("announce/legit"), rep.Class("connect")
			if ann == nil || ann.Sent == 0 || conn == nil {
				t.Fatalf("no announces: %+v", rep.Classes)
			}
			tt.check(t, ann, conn)
		})
	}
}

func TestRunHTTPRefused(t *testing.T) {
	f := newFakeHTTP(t, nil)
	url := f.srv.URL + "/announce"
	f.srv.Close()
	cfg := testHTTPConfig(url)
	cfg.Duration = 100 * time.Millisecond
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := rep.Class("connect")
	if conn == nil || conn.Failures == 0 || conn.OK != 0 || conn.TopFailures[0].Message != "connection refused" {
		t.Errorf("connect = %+v, want refused", conn)
	}
}

// FuzzReadResponse reads arbitrary bytes as the replies on one connection:
// no panic, and every reply read has a status of three digits and a body
// within maxHTTPBody, and within keepBody when that is set.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"), uint8(0))                                                   // plain
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nHTTP/1.0 404 X\r\n\r\nzz"), uint8(1)) // chunked, then to EOF, a prefix kept
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"), uint8(0))                                   // length overflowing
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n"), uint8(4))                        // chunk size overflowing
	f.Fuzz(func(t *testing.T, in []byte, keep uint8) {
		w := &httpWorker{br: bufio.NewReaderSize(bytes.NewReader(in), floodBufSize), keepBody: int(keep)}
		for range 8 {
			status, _, err := w.readResponse()
			if err != nil {
				return
			}
			if status < 100 || status > 999 {
				t.Fatalf("status %d from %q", status, in)
			}
			if len(w.body) > maxHTTPBody || keep > 0 && len(w.body) > int(keep) {
				t.Fatalf("body of %d bytes with keepBody %d", len(w.body), keep)
			}
		}
	})
}
