package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// browser is a headless Chromium the test started, driven over the
// DevTools protocol through one page. It is stopped, by PID, in
// t.Cleanup.
type browser struct {
	t      *testing.T
	cdp    *cdpConn
	stderr *bytes.Buffer
	ctx    context.Context // ends at the browser's deadline
}

// startChromium starts headless Chromium with a window of width x height
// and connects to its first page. Every call through it must finish
// within limit, or the connection is closed and the call fails.
func startChromium(t *testing.T, chromium string, width, height int, limit time.Duration) *browser {
	t.Helper()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-extensions", "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=*", fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank")
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers share its group
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", chromium, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b := &browser{t: t, stderr: stderr, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		if b.cdp != nil {
			b.cdp.Close()
		}
		pid := cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL) // the group Chromium leads: only what we started
			<-done
		}
	})

	// Chromium writes the port it chose to DevToolsActivePort.
	var port string
	for port == "" {
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			port, _, _ = strings.Cut(string(b), "\n")
		}
		select {
		case <-done:
			t.Fatalf("chromium exited before it listened: %s", stderr.Bytes())
		case <-ctx.Done():
			t.Fatalf("chromium did not write DevToolsActivePort within %v: %s", limit, stderr.Bytes())
		case <-time.After(50 * time.Millisecond):
		}
	}
	ws, err := pageSocket(ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	if b.cdp, err = dialCDP(ws); err != nil {
		t.Fatal(err)
	}
	go func() { <-ctx.Done(); b.cdp.Close() }() // a stuck call ends with the deadline
	return b
}

// call makes one DevTools call, failing the test on error.
func (b *browser) call(method string, params any, result any) {
	b.t.Helper()
	if err := b.cdp.call(method, params, result); err != nil {
		b.t.Fatalf("%s: %v (chromium: %.2000s)", method, err, b.stderr.Bytes())
	}
}

// eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value, as JSON, into out (which may be nil).
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		b.t.Fatalf("evaluate %q: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(res.Result.Value) > 0 {
		if err := json.Unmarshal(res.Result.Value, out); err != nil {
			b.t.Fatalf("evaluate %q: %v: %s", expr, err, res.Result.Value)
		}
	}
}

// waitFor polls expr every 50 ms until it is true (an exception counts as
// false), and returns how long that took; it fails the test after timeout.
func (b *browser) waitFor(what, expr string, timeout time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	for {
		var ok bool
		b.eval("(() => { try { return !!("+expr+"); } catch (e) { return false; } })()", &ok) // a page still loading throws
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			var page string
			b.eval(`location.href + "\n" + (document.body ? document.body.innerText.slice(0, 1000) : "")`, &page)
			b.t.Fatalf("%s: not within %v (%s); the page at %s", what, timeout, expr, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// navigate opens url and waits until the document has loaded.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	b.waitFor("load "+url, `document.readyState === "complete" && location.href !== "about:blank"`, 30*time.Second)
}

// viewport sets the page's size; mobile emulates a phone (touch, and the
// width the page's viewport meta tag sees).
func (b *browser) viewport(width, height int, mobile bool) {
	b.t.Helper()
	scale := 1
	if mobile {
		scale = 2
	}
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}, nil)
}

// screenshot saves the whole page as a PNG at path.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var img struct{ Data string }
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &img)
	png, err := base64.StdEncoding.DecodeString(img.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
