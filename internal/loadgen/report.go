package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run: only requests sent during the measured
// part (after the warm-up) are counted.
type Report struct {
	Protocol Protocol `json:"protocol"`
	Scenario Scenario `json:"scenario"`
	Target   string   `json:"target"`  // the address loaded
	Workers  int      `json:"workers"` // concurrent clients
	Sources  int      `json:"sources"` // distinct source addresses bound; 0 if the kernel chose
	Window   int      `json:"window,omitempty"`
	Rate     float64  `json:"rate,omitempty"` // target requests/s; 0 = unlimited

	Warmup time.Duration `json:"warmup_ns"`
	// Elapsed is the measured time: from the end of the warm-up until
	// sending stopped (Duration, or less if MaxRequests or the context
	// ended the run). Rates are per second of Elapsed.
	Elapsed time.Duration `json:"elapsed_ns"`
	// StoppedBy says what ended sending: "duration", "max-requests" or
	// "canceled".
	StoppedBy string `json:"stopped_by"`

	// GeneratorCPU is the CPU time (user and system) the load generator's
	// process used during Elapsed, and GeneratorCores that divided by
	// Elapsed: near GOMAXPROCS, the generator was the bottleneck and the
	// target may be faster than measured. Both are 0 where unknown.
	GeneratorCPU   time.Duration `json:"generator_cpu_ns"`
	GeneratorCores float64       `json:"generator_cores"`
	GOMAXPROCS     int           `json:"gomaxprocs"`

	// Classes has one entry per kind of request sent, in a fixed order:
	// connect, announce/legit, announce/unknown, scrape/legit,
	// scrape/unknown. Over HTTP, connect counts TCP connections.
	Classes []ClassReport `json:"classes"`
	// Unmatched counts replies that belonged to no outstanding request (a
	// transaction ID never sent or already answered, or too short to
	// carry one), by reason. Late replies to timed-out requests are not
	// here but in their class's Late.
	Unmatched []MessageCount `json:"unmatched,omitempty"`
	// OneShotWorkers counts HTTP workers that stopped reusing connections
	// because the server closed them after every reply without saying so
	// (see ClassReport.ClosedIdle); they then sent "Connection: close" and
	// connected once per request.
	OneShotWorkers int `json:"one_shot_workers,omitempty"`
	// IOErrors counts socket errors (refused, reset, ...), with the most
	// frequent ones.
	IOErrors   uint64         `json:"io_errors"`
	IOErrorMsg []MessageCount `json:"io_error_messages,omitempty"`
}

// ClassReport counts one kind of request. Every request sent is counted
// exactly once as OK, Failures, Timeouts or Bad, except those still in
// flight when a canceled run stopped waiting.
type ClassReport struct {
	Name string `json:"name"`
	Sent uint64 `json:"sent"`
	// OK counts well-formed replies that answered the request.
	OK uint64 `json:"ok"`
	// Failures counts well-formed refusals: a UDP error action, an HTTP
	// "failure reason", a TCP connection that could not be made.
	Failures uint64 `json:"failures"`
	// Timeouts counts requests with no reply within Timeout.
	Timeouts uint64 `json:"timeouts"`
	// Bad counts replies that were malformed or did not match their
	// request (wrong action, length, interval, status, bencode ...).
	Bad uint64 `json:"bad"`
	// Late counts replies that came after their request had timed out
	// (already counted in Timeouts).
	Late uint64 `json:"late"`
	// RepliesPerSec is (OK + Failures) per second of Elapsed.
	RepliesPerSec float64 `json:"replies_per_sec"`
	// OKPerSec is OK per second of Elapsed.
	OKPerSec float64 `json:"ok_per_sec"`
	// Latency is over OK and Failures replies, from send to receipt.
	Latency LatencySummary `json:"latency"`
	// TopFailures are the most frequent failure messages.
	TopFailures []MessageCount `json:"top_failures,omitempty"`
	// BadReasons breaks Bad down, and BadDetails says more where it can
	// (HTTP status codes, framing errors).
	BadReasons []MessageCount `json:"bad_reasons,omitempty"`
	BadDetails []MessageCount `json:"bad_details,omitempty"`
	// ClosedIdle counts HTTP requests that met a kept-alive connection
	// the server had already closed without saying so (no "Connection:
	// close"). They were retried on a new connection and are in no other
	// count, Sent included.
	ClosedIdle uint64 `json:"closed_idle,omitempty"`
}

// LatencySummary are quantiles of a latency histogram, within 1.6%.
type LatencySummary struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// MessageCount is a message and how often it was seen.
type MessageCount struct {
	Message string `json:"message"`
	Count   uint64 `json:"count"`
}

// GeneratorBound reports whether the generator used nearly all the CPU it
// may use (85% of GOMAXPROCS or more), so its own speed may have limited
// the rates measured.
func (r *Report) GeneratorBound() bool {
	return r.GOMAXPROCS > 0 && r.GeneratorCores >= 0.85*float64(r.GOMAXPROCS)
}

// Class returns the report of the named class, or nil.
func (r *Report) Class(name string) *ClassReport {
	for i := range r.Classes {
		if r.Classes[i].Name == name {
			return &r.Classes[i]
		}
	}
	return nil
}

// Total returns the sums over all classes but connect; its rates and
// latency are left zero.
func (r *Report) Total() ClassReport {
	t := ClassReport{Name: "total"}
	for _, c := range r.Classes {
		if c.Name == classConnect.String() {
			continue
		}
		t.Sent += c.Sent
		t.OK += c.OK
		t.Failures += c.Failures
		t.Timeouts += c.Timeouts
		t.Bad += c.Bad
		t.Late += c.Late
		t.RepliesPerSec += c.RepliesPerSec
		t.OKPerSec += c.OKPerSec
	}
	return t
}

func buildReport(st *workerStats, elapsed time.Duration) []ClassReport {
	var out []ClassReport
	secs := elapsed.Seconds()
	for c := range numClasses {
		s := &st.classes[c]
		if s.sent == 0 && s.ok+s.failures+s.bad+s.late+s.closedIdle == 0 {
			continue
		}
		cr := ClassReport{
			Name: c.String(), Sent: s.sent, OK: s.ok, Failures: s.failures,
			Timeouts: s.timeouts, Bad: s.bad, Late: s.late,
			TopFailures: s.failMsgs.top(5),
		}
		if secs > 0 {
			cr.RepliesPerSec = float64(s.ok+s.failures) / secs
			cr.OKPerSec = float64(s.ok) / secs
		}
		if h := s.hist; h != nil {
			cr.Latency = LatencySummary{P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), Max: h.Max(), Mean: h.Mean()}
		}
		cr.BadReasons = reasons(&s.badReasons)
		cr.BadDetails = s.badMsgs.top(5)
		cr.ClosedIdle = s.closedIdle
		out = append(out, cr)
	}
	return out
}

func reasons(r *[numBadReasons]uint64) []MessageCount {
	var out []MessageCount
	for i, n := range r {
		if n > 0 {
			out = append(out, MessageCount{Message: badReason(i).String(), Count: n})
		}
	}
	return out
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s → %s: %d workers", r.Protocol, r.Scenario, r.Target, r.Workers)
	if r.Window > 0 {
		fmt.Fprintf(&b, " × %d in flight", r.Window)
	}
	if r.Sources > 0 {
		fmt.Fprintf(&b, ", %d source addresses", r.Sources)
	}
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.Rate)
	}
	fmt.Fprintf(&b, ", rate %s\nmeasured %v after %v warm-up, stopped by %s", rate, r.Elapsed.Round(time.Millisecond), r.Warmup, r.StoppedBy)
	if r.GeneratorCPU > 0 {
		fmt.Fprintf(&b, "; generator CPU %.2f of %d cores", r.GeneratorCores, r.GOMAXPROCS)
		if r.GeneratorBound() {
			b.WriteString(" (at its limit: the target may be faster than measured)")
		}
	}
	b.WriteString("\n\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tsent\tok\tfail\ttimeout\tbad\tlate\treplies/s\tp50\tp90\tp99\tmax\t")
	row := func(c ClassReport, lat bool) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t", c.Name, c.Sent, c.OK, c.Failures, c.Timeouts, c.Bad, c.Late, c.RepliesPerSec)
		if lat {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", fmtDur(c.Latency.P50), fmtDur(c.Latency.P90), fmtDur(c.Latency.P99), fmtDur(c.Latency.Max))
		} else {
			fmt.Fprint(tw, "\t\t\t\t\n")
		}
	}
	for _, c := range r.Classes {
		row(c, true)
	}
	if len(r.Classes) > 1 {
		row(r.Total(), false)
	}
	tw.Flush()

	for _, c := range r.Classes {
		for _, m := range c.TopFailures {
			fmt.Fprintf(&b, "failure  %-16s %10d × %q\n", c.Name, m.Count, m.Message)
		}
		for _, m := range c.BadReasons {
			fmt.Fprintf(&b, "bad      %-16s %10d × %s\n", c.Name, m.Count, m.Message)
		}
		for _, m := range c.BadDetails {
			fmt.Fprintf(&b, "         %-16s %10d × %s\n", "", m.Count, m.Message)
		}
		if c.ClosedIdle > 0 {
			fmt.Fprintf(&b, "retried  %-16s %10d × server had closed the kept-alive connection without \"Connection: close\"\n", c.Name, c.ClosedIdle)
		}
	}
	for _, m := range r.Unmatched {
		fmt.Fprintf(&b, "unmatched reply  %10d × %s\n", m.Count, m.Message)
	}
	if r.OneShotWorkers > 0 {
		fmt.Fprintf(&b, "%d of %d workers stopped reusing connections (the server closes them after each reply) and connected once per request\n", r.OneShotWorkers, r.Workers)
	}
	if r.IOErrors > 0 {
		fmt.Fprintf(&b, "socket errors    %10d", r.IOErrors)
		for _, m := range r.IOErrorMsg {
			fmt.Fprintf(&b, "; %d × %s", m.Count, m.Message)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
