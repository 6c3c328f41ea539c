package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// ServerReport is what a run saw of the tracker's process (Config.ServerPID)
// in /proc while it ran.
type ServerReport struct {
	PID int `json:"pid"`
	// PeakRSS is the largest resident set size (VmRSS) sampled from the
	// start of the warm-up to the end of the run, every 100 ms; RSSStart
	// and RSSEnd are the first and last samples.
	PeakRSS  int64 `json:"peak_rss_bytes"`
	RSSStart int64 `json:"rss_start_bytes"`
	RSSEnd   int64 `json:"rss_end_bytes"`
	// HWM is the process's own peak resident set size (VmHWM) at the end
	// of the run: since it started, so it includes what it did before.
	// The kernel's RSS counters are approximate (per-thread caches), so a
	// sample may exceed it by a few hundred KiB.
	HWM int64 `json:"hwm_bytes"`
	// CPU is the CPU time (user and system, all threads) the process
	// used during the measured part of the run, and Cores that divided by
	// it. /proc counts in ticks of 10 ms.
	CPU     time.Duration `json:"cpu_ns"`
	Cores   float64       `json:"cores"`
	Samples int           `json:"samples"`
	// Exited is set when the process could no longer be read before the
	// run ended (it exited or crashed); the figures are up to then.
	Exited bool `json:"exited,omitempty"`
}

// MachineReport is how busy each CPU of the machine was during the
// measured part of a run, from /proc/stat (Linux): the share of its time
// spent outside idle and I/O wait, by anyone, kernel work for loopback
// traffic included. With the server and the generator pinned to their own
// CPUs, a busy fraction much above what they used themselves means that
// something else ran there, and the numbers are suspect.
type MachineReport struct {
	CPUBusy []float64 `json:"cpu_busy"` // per CPU, 0 to 1
	Load1   float64   `json:"load1"`    // 1-minute load average at the end
}

// cpuTimes are the busy and total ticks of each CPU, from /proc/stat.
type cpuTimes struct{ busy, total []uint64 }

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseProcStat(b)
}

// parseProcStat reads the per-CPU lines ("cpuN user nice system idle
// iowait irq softirq steal ...") of /proc/stat.
func parseProcStat(b []byte) (cpuTimes, error) {
	var t cpuTimes
	for line := range bytes.Lines(b) {
		if !bytes.HasPrefix(line, []byte("cpu")) || len(line) < 4 || line[3] < '0' || line[3] > '9' {
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 9 {
			return cpuTimes{}, fmt.Errorf("stat: bad line %q", bytes.TrimSpace(line))
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("stat: bad line %q", bytes.TrimSpace(line))
			}
			v[i] = n
		}
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7] // user nice system irq softirq steal
		t.busy = append(t.busy, busy)
		t.total = append(t.total, busy+v[3]+v[4]) // + idle iowait
	}
	if len(t.busy) == 0 {
		return cpuTimes{}, errors.New("stat: no cpu lines")
	}
	return t, nil
}

// machineReport returns the busy fraction of each CPU between a and b.
func machineReport(a, b cpuTimes) *MachineReport {
	if len(a.busy) != len(b.busy) {
		return nil
	}
	r := &MachineReport{CPUBusy: make([]float64, len(a.busy))}
	for i := range a.busy {
		if dt := b.total[i] - a.total[i]; dt > 0 {
			r.CPUBusy[i] = float64(b.busy[i]-a.busy[i]) / float64(dt)
		}
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := bytes.Fields(l); len(f) > 0 {
			r.Load1, _ = strconv.ParseFloat(string(f[0]), 64)
		}
	}
	return r
}

// clockTick is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every architecture Linux and Go share.
const clockTick = 10 * time.Millisecond

const serverSampleEvery = 100 * time.Millisecond

// serverProbe samples a process's memory and CPU time from /proc.
type serverProbe struct {
	pid      int
	dir      string        // "/proc/PID"
	done     chan struct{} // closed by stop
	finished chan struct{} // closed when watch returns

	mu           sync.Mutex // guards the fields below
	rep          ServerReport
	cpu0, cpu1   time.Duration
	have0, have1 bool
}

// newServerProbe checks that the process can be read, and returns a probe
// for it. It does not start sampling.
func newServerProbe(pid int) (*serverProbe, error) {
	p := &serverProbe{pid: pid, dir: "/proc/" + strconv.Itoa(pid), done: make(chan struct{}), finished: make(chan struct{})}
	p.rep.PID = pid
	if _, err := p.readCPU(); err != nil {
		return nil, fmt.Errorf("server pid %d: %w", pid, err)
	}
	if _, _, err := p.readMem(); err != nil {
		return nil, fmt.Errorf("server pid %d: %w", pid, err)
	}
	return p, nil
}

// readCPU returns the process's user and system time, from fields 14 and
// 15 of /proc/PID/stat.
func (p *serverProbe) readCPU() (time.Duration, error) {
	b, err := os.ReadFile(p.dir + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime from the text of /proc/PID/stat. The
// command name, in parentheses, may hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 63)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 63)
	if err1 != nil || err2 != nil {
		return 0, errors.New("stat: bad utime or stime")
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// readMem returns VmRSS and VmHWM in bytes, from /proc/PID/status.
func (p *serverProbe) readMem() (rss, hwm int64, err error) {
	b, err := os.ReadFile(p.dir + "/status")
	if err != nil {
		return 0, 0, err
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (rss, hwm int64, err error) {
	found := 0
	for line := range bytes.Lines(b) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwm
		default:
			continue
		}
		f := bytes.Fields(line[6:])
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, 0, fmt.Errorf("status: bad line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("status: bad line %q", bytes.TrimSpace(line))
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("status: no VmRSS or VmHWM (a kernel thread, or not Linux?)")
	}
	return rss, hwm, nil
}

// sample reads the memory once and records it. It reports false once the
// process cannot be read.
func (p *serverProbe) sample() bool {
	rss, hwm, err := p.readMem()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.rep.Exited = true
		return false
	}
	if p.rep.Samples == 0 {
		p.rep.RSSStart = rss
	}
	p.rep.Samples++
	p.rep.PeakRSS = max(p.rep.PeakRSS, rss)
	p.rep.RSSEnd, p.rep.HWM = rss, hwm
	return true
}

// watch samples the memory every serverSampleEvery until stop is called.
func (p *serverProbe) watch() {
	defer close(p.finished)
	t := time.NewTicker(serverSampleEvery)
	defer t.Stop()
	if !p.sample() {
		return
	}
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			if !p.sample() {
				return
			}
		}
	}
}

// markCPU records the CPU time at the start (first call) and at the end
// of the measured part.
func (p *serverProbe) markCPU(end bool) {
	c, err := p.readCPU()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.rep.Exited = true
	case end:
		p.cpu1, p.have1 = c, true
	default:
		p.cpu0, p.have0 = c, true
	}
}

// stop ends the sampling, takes a last sample and returns the report for
// a measured part of length elapsed. watch must have been started.
func (p *serverProbe) stop(elapsed time.Duration) *ServerReport {
	close(p.done)
	<-p.finished
	if !p.rep.Exited {
		p.sample()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rep
	if p.have0 && p.have1 && elapsed > 0 {
		r.CPU = p.cpu1 - p.cpu0
		r.Cores = r.CPU.Seconds() / elapsed.Seconds()
	}
	return &r
}
