package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
)

// Client calls the admin API; the CLI uses it.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:7070
	Token   Token
	Actor   string // sent as X-Warden-Actor, recorded in the audit log
	HTTP    *http.Client
}

// APIError is an error answer from the API.
type APIError struct {
	Status int
	Msg    string
	// RetryAfter is the server's Retry-After, given with 503 (registry
	// busy: nothing was changed, and the request may be sent again).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Status == http.StatusServiceUnavailable && e.RetryAfter > 0 {
		return fmt.Sprintf("%s; nothing was changed: try again in %v (HTTP %d)", e.Msg, e.RetryAfter, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(req, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("admin API: reply larger than %d MiB", maxBody>>20)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*rawText); ok {
		*raw = rawText(data)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API: reply: %w", err)
	}
	return nil
}

// send sends req with the token and actor, and returns the response if
// its status is 2xx, or the error reply as an *APIError. streaming drops the
// client's default one-minute timeout (ctx still bounds the request).
func (c *Client) send(req *http.Request, streaming bool) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+string(c.Token))
	if c.Actor != "" {
		req.Header.Set("X-Warden-Actor", c.Actor)
	}
	hc := c.HTTP
	switch {
	case hc == nil && streaming:
		hc = &http.Client{}
	case hc == nil:
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: %w (is warden serve running?)", c.BaseURL, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = http.StatusText(resp.StatusCode)
	}
	ae := &APIError{Status: resp.StatusCode, Msg: e.Error}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		ae.RetryAfter = time.Duration(n) * time.Second
	}
	return nil, ae
}

// DefaultTimeout bounds each request of a Client without its own
// http.Client, from sending to the end of the reply.
const DefaultTimeout = time.Minute

// Add registers torrents.
func (c *Client) Add(ctx context.Context, ts []AddTorrent) (AddResponse, error) {
	var out AddResponse
	err := c.do(ctx, http.MethodPost, "/api/torrents", AddRequest{Torrents: ts}, &out)
	return out, err
}

// Revoke revokes the torrent hash names (40 or 64 hex digits).
func (c *Client) Revoke(ctx context.Context, hash, reason string) (registry.Entry, error) {
	var out registry.Entry
	err := c.do(ctx, http.MethodPost, "/api/torrents/"+url.PathEscape(hash)+"/revoke", RevokeRequest{Reason: reason}, &out)
	return out, err
}

// Restore makes a revoked torrent active again.
func (c *Client) Restore(ctx context.Context, hash string) (registry.Entry, error) {
	var out registry.Entry
	err := c.do(ctx, http.MethodPost, "/api/torrents/"+url.PathEscape(hash)+"/restore", nil, &out)
	return out, err
}

// Get returns one entry.
func (c *Client) Get(ctx context.Context, hash string) (registry.Entry, error) {
	var out registry.Entry
	err := c.do(ctx, http.MethodGet, "/api/torrents/"+url.PathEscape(hash), nil, &out)
	return out, err
}

// ListQuery selects entries for ListPage and Walk: State "active",
// "revoked" or "" for both, Name a substring of the name, After an entry
// ID to read on from, and Limit the page size (0 for the server's
// default, at most MaxListLimit).
type ListQuery struct {
	State, Name string
	After       int64
	Limit       int
}

func (q ListQuery) path() string {
	v := url.Values{}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.Name != "" {
		v.Set("name", q.Name)
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if len(v) == 0 {
		return "/api/torrents"
	}
	return "/api/torrents?" + v.Encode()
}

// ListPage returns one page of entries; NextAfter is set if more may
// follow.
func (c *Client) ListPage(ctx context.Context, q ListQuery) (ListPage, error) {
	page := ListPage{Torrents: []registry.Entry{}}
	next, err := c.walkPage(ctx, q, func(e *registry.Entry) error {
		page.Torrents = append(page.Torrents, *e)
		return nil
	})
	page.NextAfter = next
	return page, err
}

// Walk calls fn for every entry q selects, in ID order, reading pages of
// q.Limit entries (MaxListLimit if 0) and decoding each page as it
// arrives, so memory stays bounded however large the registry. fn must not
// keep e. An error from fn stops Walk and is returned.
func (c *Client) Walk(ctx context.Context, q ListQuery, fn func(e *registry.Entry) error) error {
	if q.Limit == 0 {
		q.Limit = MaxListLimit
	}
	for {
		next, err := c.walkPage(ctx, q, fn)
		if err != nil || next == 0 {
			return err
		}
		q.After = next
	}
}

// List returns every entry in state ("" for all), holding them all in
// memory; Walk does not.
func (c *Client) List(ctx context.Context, state string) ([]registry.Entry, error) {
	var out []registry.Entry
	err := c.Walk(ctx, ListQuery{State: state}, func(e *registry.Entry) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// walkPage reads one page of GET /api/torrents, calling fn for each entry
// as it is decoded, and returns the page's next_after.
func (c *Client) walkPage(ctx context.Context, q ListQuery, fn func(e *registry.Entry) error) (next int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+q.path(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.send(req, false)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	bad := func(err error) (int64, error) {
		return 0, fmt.Errorf("admin API: list reply: %w", err)
	}
	if err := expectDelim(dec, '{'); err != nil {
		return bad(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		switch tok {
		case "torrents":
			if err := expectDelim(dec, '['); err != nil {
				return bad(err)
			}
			var e registry.Entry
			for dec.More() {
				e = registry.Entry{}
				if err := dec.Decode(&e); err != nil {
					return bad(err)
				}
				if err := fn(&e); err != nil {
					return 0, err
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return bad(err)
			}
		case "next_after":
			if err := dec.Decode(&next); err != nil {
				return bad(err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return bad(err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return bad(err)
	}
	return next, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
}

// History returns the audit log of the torrent hash names (40 or 64 hex
// digits), oldest first.
func (c *Client) History(ctx context.Context, hash string) ([]registry.Change, error) {
	var out ChangesResponse
	err := c.do(ctx, http.MethodGet, "/api/torrents/"+url.PathEscape(hash)+"/history", nil, &out)
	return out.Changes, err
}

// Changes returns the audit log rows after sequence number after, oldest
// first: at most limit of them, or DefaultChangesLimit if limit is 0. To
// page through the log, pass the last row's Seq; fewer rows than asked for
// means the end.
func (c *Client) Changes(ctx context.Context, after int64, limit int) ([]registry.Change, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatInt(after, 10))
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out ChangesResponse
	err := c.do(ctx, http.MethodGet, "/api/changes?"+q.Encode(), nil, &out)
	return out.Changes, err
}

// Refused returns the refused-request summary with the top n.
func (c *Client) Refused(ctx context.Context, n int) (evidence.Refusals, error) {
	var out evidence.Refusals
	err := c.do(ctx, http.MethodGet, "/api/refused?n="+strconv.Itoa(n), nil, &out)
	return out, err
}

// Bans returns the bans in force and the limiter's counters.
func (c *Client) Bans(ctx context.Context) (BansResponse, error) {
	var out BansResponse
	err := c.do(ctx, http.MethodGet, "/api/guard/bans", nil, &out)
	return out, err
}

// Unban lifts the ban on an address or prefix.
func (c *Client) Unban(ctx context.Context, prefix string) error {
	return c.do(ctx, http.MethodPost, "/api/guard/unban", UnbanRequest{Prefix: prefix}, nil)
}

// Export returns the bans as a kernel script in format (nft or ipset).
func (c *Client) Export(ctx context.Context, format string) (string, error) {
	var out rawText
	err := c.do(ctx, http.MethodGet, "/api/guard/export?format="+url.QueryEscape(format), nil, &out)
	return string(out), err
}

// Backup streams a consistent copy of the registry (a SQLite file) to w and
// returns what the server says it holds; check the written file against it
// (registry.Inspect). It is not bounded by the client's usual timeout,
// only by ctx.
func (c *Client) Backup(ctx context.Context, w io.Writer) (registry.Info, error) {
	var info registry.Info
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/api/registry/backup", nil)
	if err != nil {
		return info, err
	}
	resp, err := c.send(req, true)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if info.Generation, err = strconv.ParseInt(resp.Header.Get(HeaderGeneration), 10, 64); err == nil {
		info.Entries, err = strconv.ParseInt(resp.Header.Get(HeaderEntries), 10, 64)
	}
	if err != nil {
		return info, fmt.Errorf("admin API: backup reply without %s and %s", HeaderGeneration, HeaderEntries)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err != nil {
		return info, fmt.Errorf("admin API: backup: %w", err)
	}
	return info, nil
}

// rawText takes a reply body as it is.
type rawText string

// IsStatus reports whether err is an APIError with the given status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// Ban bans prefix, a key of the limiter, for d, or lengthens its running
// ban, and returns the ban. An APIError with status 400 means the prefix
// or duration was refused, 409 that the ban table has no room for it.
func (c *Client) Ban(ctx context.Context, prefix string, d time.Duration) (limit.Ban, error) {
	var b limit.Ban
	err := c.do(ctx, http.MethodPost, "/api/guard/ban", BanRequest{Prefix: prefix, Duration: d.String()}, &b)
	return b, err
}
