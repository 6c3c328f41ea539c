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
	// CPUs is the number of CPUs the generator may run on (its affinity
	// mask, e.g. from taskset). The flood scenario raises GOMAXPROCS to 2
	// even on one CPU, so that the legit class is served on time.
	CPUs int `json:"cpus"`

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

	// Flood is the outcome of the flood scenario; nil for the others.
	Flood *FloodReport `json:"flood,omitempty"`
	// Server is what was seen of the tracker's process, with
	// Config.ServerPID; nil without.
	Server *ServerReport `json:"server,omitempty"`
	// Machine is how busy each CPU was; nil where /proc/stat is missing.
	Machine *MachineReport `json:"machine,omitempty"`
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
// may use (85% of GOMAXPROCS or of its CPUs, the fewer, or more), so its
// own speed may have limited the rates measured.
func (r *Report) GeneratorBound() bool {
	n := r.generatorCores()
	return n > 0 && r.GeneratorCores >= 0.85*float64(n)
}

// generatorCores returns how many cores the generator could use.
func (r *Report) generatorCores() int {
	if r.CPUs > 0 {
		return min(r.GOMAXPROCS, r.CPUs)
	}
	return r.GOMAXPROCS
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
	if r.Flood != nil {
		r.writeFloodHeader(&b)
	} else {
		r.writeHeader(&b)
	}
	b.WriteString("\n")
	if r.Flood != nil {
		r.Flood.writeText(&b)
		if len(r.Classes) > 0 {
			b.WriteString("\nlegit requests:\n")
		}
	}
	if r.Flood == nil || len(r.Classes) > 0 {
		r.writeClasses(&b)
	}
	if r.Server != nil {
		r.Server.writeText(&b)
	}
	if r.Machine != nil {
		b.WriteString("machine: CPUs busy")
		for i, f := range r.Machine.CPUBusy {
			fmt.Fprintf(&b, " %d:%.0f%%", i, 100*f)
		}
		fmt.Fprintf(&b, "; load average %.2f\n", r.Machine.Load1)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeGenerator(b *strings.Builder) {
	if r.GeneratorCPU > 0 {
		fmt.Fprintf(b, "; generator CPU %.2f of %d cores", r.GeneratorCores, r.generatorCores())
		if r.GeneratorBound() {
			b.WriteString(" (at its limit: the target may be faster than measured)")
		}
	}
	b.WriteString("\n")
}

func (r *Report) writeHeader(b *strings.Builder) {
	fmt.Fprintf(b, "%s %s → %s: %d workers", r.Protocol, r.Scenario, r.Target, r.Workers)
	if r.Window > 0 {
		fmt.Fprintf(b, " × %d in flight", r.Window)
	}
	if r.Sources > 0 {
		fmt.Fprintf(b, ", %d source addresses", r.Sources)
	}
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.Rate)
	}
	fmt.Fprintf(b, ", rate %s\nmeasured %v after %v warm-up, stopped by %s", rate, r.Elapsed.Round(time.Millisecond), r.Warmup, r.StoppedBy)
	r.writeGenerator(b)
}

func (r *Report) writeFloodHeader(b *strings.Builder) {
	f := r.Flood
	fmt.Fprintf(b, "%s flood → %s: ", r.Protocol, r.Target)
	if f.LegitRate > 0 {
		fmt.Fprintf(b, "legit %.0f joins/s from %d sources; ", f.LegitRate, f.LegitSources)
	} else {
		b.WriteString("no legit class; ")
	}
	mode := string(f.Mode)
	if f.Mix != "" {
		mode = f.Mix
	}
	switch {
	case f.FloodRate == FloodOff:
		b.WriteString("no flood")
	case f.FloodRate == 0:
		fmt.Fprintf(b, "flood (%s) as fast as possible from %d sources", mode, f.FloodSources)
	default:
		fmt.Fprintf(b, "flood (%s) %.0f/s from %d sources", mode, f.FloodRate, f.FloodSources)
	}
	fmt.Fprintf(b, "\nmeasured %v after %v warm-up, stopped by %s", r.Elapsed.Round(time.Millisecond), r.Warmup, r.StoppedBy)
	r.writeGenerator(b)
}

func (f *FloodReport) writeText(b *strings.Builder) {
	if f.LegitRate > 0 {
		f.Legit.writeText(b, f.LegitNewConn)
		switch {
		case f.LegitPriority > 0:
			fmt.Fprintf(b, "legit class timed from a process of its own at real-time priority %d (SCHED_FIFO), which used %.2f cores\n", f.LegitPriority, f.LegitCores)
		case f.LegitShared:
			b.WriteString("legit class timed in the flood's process: its latencies include the generator's own delays (--legit-rt times it from a process of its own)\n")
		}
	}
	t := f.Flood
	if t == nil {
		return
	}
	fmt.Fprintf(b, "\nflood: sent %d (%.0f/s), replies %d (%.0f/s)", t.Sent, t.SentPerSec, t.Replies, t.RepliesPerSec)
	if t.Connects > 0 {
		fmt.Fprintf(b, "; connects %d, answered %d", t.Connects, t.ConnectsOK)
	}
	if t.SendErrors > 0 {
		fmt.Fprintf(b, "; %d send errors", t.SendErrors)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "reply\tcount\tper sec\tof sent\t")
	for _, k := range t.Kinds {
		pct := 0.0
		if t.Sent > 0 {
			pct = 100 * float64(k.Count) / float64(t.Sent)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f%%\t\n", k.Kind, k.Count, k.PerSec, pct)
	}
	tw.Flush()
	for _, m := range t.TopMessages {
		fmt.Fprintf(b, "message  flood %10d × %q\n", m.Count, m.Message)
	}
	for _, m := range t.IOErrorMsg {
		fmt.Fprintf(b, "socket error flood %10d × %s\n", m.Count, m.Message)
	}
	if len(t.Modes) > 0 {
		writeModes(b, t.Modes)
	}
}

// writeModes writes the HTTP flood's breakdown by connection mode.
func writeModes(b *strings.Builder, modes []HTTPModeReport) {
	b.WriteString("\nflood connections by mode (requests: sent = offered; held: how long the server kept idle and partial ones):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tconns\tconnects/s\tconn fail\tconn timeout\tsent/s\treplies/s\tunanswered\ttimeout\tserver closed\tp50\tp99\theld p50\theld p99\theld to end\t")
	for _, m := range modes {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%.0f\t%.0f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t\n",
			m.Mode, m.Conns, m.ConnectsPerSec, m.ConnectFailures, m.ConnectTimeouts, m.SentPerSec, m.RepliesPerSec,
			m.Unanswered, m.Timeouts, m.ServerClosed, fmtDur(m.Latency.P50), fmtDur(m.Latency.P99),
			fmtDur(m.Held.P50), fmtDur(m.Held.P99), m.HeldToEnd)
	}
	tw.Flush()
	for _, m := range modes {
		for _, said := range m.ServerSaid {
			fmt.Fprintf(b, "server said on %s connections %10d × %q\n", m.Mode, said.Count, said.Message)
		}
	}
}

func (l *LegitReport) writeText(b *strings.Builder, newConn bool) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "legit\tjoins\tok\tsuccess\tfail\ttimeout\tbad\tnot sent\tjoins/s\tp50\tp90\tp99\tmax\t")
	fmt.Fprintf(tw, "joins\t%d\t%d\t%.2f%%\t%d\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n",
		l.Joins, l.OK, l.SuccessPct, l.Failures, l.Timeouts, l.Bad, l.NotSent, l.JoinsPerSec,
		fmtDur(l.Latency.P50), fmtDur(l.Latency.P90), fmtDur(l.Latency.P99), fmtDur(l.Latency.Max))
	tw.Flush()
	what := "from the join's start to its announce reply, connect included"
	if newConn {
		what = "connect, request and reply, a connection per join"
	}
	fmt.Fprintf(b, "join latency: %s; generator lag behind schedule p99 %s, max %s\n", what, fmtDur(l.LagP99), fmtDur(l.LagMax))
	if l.GeneratorLagging() {
		b.WriteString("the generator fell behind its schedule: it lacked CPU, and the latencies include its own delays\n")
	}
	for _, m := range l.TopFailures {
		fmt.Fprintf(b, "failure  joins %10d × %q\n", m.Count, m.Message)
	}
}

func (s *ServerReport) writeText(b *strings.Builder) {
	const mib = 1 << 20
	fmt.Fprintf(b, "\nserver pid %d: peak RSS %.1f MiB (from %.1f to %.1f MiB, %d samples; VmHWM %.1f MiB), CPU %.2f cores (%v)",
		s.PID, float64(s.PeakRSS)/mib, float64(s.RSSStart)/mib, float64(s.RSSEnd)/mib, s.Samples, float64(s.HWM)/mib,
		s.Cores, s.CPU.Round(10*time.Millisecond))
	if s.Exited {
		b.WriteString("; the process went away during the run")
	}
	b.WriteString("\n")
}

func (r *Report) writeClasses(b *strings.Builder) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
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
			fmt.Fprintf(b, "failure  %-16s %10d × %q\n", c.Name, m.Count, m.Message)
		}
		for _, m := range c.BadReasons {
			fmt.Fprintf(b, "bad      %-16s %10d × %s\n", c.Name, m.Count, m.Message)
		}
		for _, m := range c.BadDetails {
			fmt.Fprintf(b, "         %-16s %10d × %s\n", "", m.Count, m.Message)
		}
		if c.ClosedIdle > 0 {
			fmt.Fprintf(b, "retried  %-16s %10d × server had closed the kept-alive connection without \"Connection: close\"\n", c.Name, c.ClosedIdle)
		}
	}
	for _, m := range r.Unmatched {
		fmt.Fprintf(b, "unmatched reply  %10d × %s\n", m.Count, m.Message)
	}
	if r.OneShotWorkers > 0 {
		fmt.Fprintf(b, "%d of %d workers stopped reusing connections (the server closes them after each reply) and connected once per request\n", r.OneShotWorkers, r.Workers)
	}
	if r.IOErrors > 0 {
		fmt.Fprintf(b, "socket errors    %10d", r.IOErrors)
		for _, m := range r.IOErrorMsg {
			fmt.Fprintf(b, "; %d × %s", m.Count, m.Message)
		}
		b.WriteByte('\n')
	}
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
