package sensor_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"warden/internal/loadgen"
	"warden/internal/sensor"
)

// The measurements of the sensor's cost that the package comment and
// docs/deploy.md quote. They assert nothing: they run only with
// WARDEN_SENSOR_MEASURE=1, under the bench lock, with this test binary
// pinned to one core and the load to the other, e.g.
//
//	go build -o /tmp/warden ./cmd/warden && go test -c -o /tmp/sensor.test ./internal/sensor
//	flock /tmp/warden-bench.lock env WARDEN_SENSOR_MEASURE=1 WARDEN_BIN=/tmp/warden \
//	    taskset -c 0 /tmp/sensor.test -test.run '^TestMeasure' -test.v
//
// Each runs the same load with and without the sensor, alternating, and
// reports every run and the medians. The process's CPU (getrusage) is the
// tracker's side: its UDP workers idle while the kernel drops the banned
// flood, so what the sensor adds is the draining of its rings. The
// kernel's work for the sensor (running its filter on every received
// packet, copying the accepted ones into a ring) is done in softirq on
// the receiving CPU, which on loopback is the sender's: it shows in the
// sender's CPU time, or as fewer packets sent per second.

func measuring(t *testing.T) {
	if os.Getenv("WARDEN_SENSOR_MEASURE") != "1" {
		t.Skip("a measurement: set WARDEN_SENSOR_MEASURE=1 (see measure_linux_test.go)")
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func childCPU(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestMeasureBannedFlood floods a banned source at WARDEN_FLOOD_RATE
// (default 500,000) datagrams/s for 10 s with warden load on core 1.
func TestMeasureBannedFlood(t *testing.T) {
	measuring(t)
	bin := os.Getenv("WARDEN_BIN")
	if bin == "" {
		t.Fatal("WARDEN_BIN: the warden binary to run warden load with")
	}
	rate := "500000"
	if r := os.Getenv("WARDEN_FLOOD_RATE"); r != "" {
		rate = r
	}
	flooder := netip.MustParseAddr("127.1.0.1")
	type result struct{ serverCores, loadCores, sentPerSec, counted, sent, ringDrops float64 }
	var runs [2][]result // without, with
	for i := range 6 {
		with := i%2 == 1
		t.Run(map[bool]string{false: "without", true: "with"}[with], func(t *testing.T) {
			f := startFrontend(t, with, netip.PrefixFrom(flooder, 32))
			cmd := exec.Command("taskset", "-c", "1", bin, "load", "--scenario", "flood", "--json",
				"--udp", f.srv.Addr().String(), "--legit-rate", "0", "--flood-sources", "127.1.0.1/32",
				"--flood-mode", "bad-cookie", "--flood-rate", rate, "--warmup", "0", "--duration", "10s")
			cpu0, t0 := selfCPU(), time.Now()
			out, err := cmd.Output()
			cpu, elapsed := selfCPU()-cpu0, time.Since(t0)
			if err != nil {
				t.Fatalf("%v: %v\n%s", cmd, err, out)
			}
			var rep loadgen.Report
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("warden load's report: %v", err)
			}
			r := result{
				serverCores: cpu.Seconds() / elapsed.Seconds(),
				loadCores:   rep.GeneratorCores,
				sentPerSec:  rep.Flood.Flood.SentPerSec,
				sent:        float64(rep.Flood.Flood.Sent),
			}
			if with {
				r.counted = float64(sensor.SettleForTest(f.sens, func() uint64 { return f.sink.get(flooder) }))
				r.ringDrops = float64(f.sens.Stats().RingDrops)
			}
			runs[b2i(with)] = append(runs[b2i(with)], r)
			t.Logf("sensor %v: server %.4f cores, load %.3f cores, sent %.0f/s (%.0f), sensor counted %.0f, ring drops %.0f",
				with, r.serverCores, r.loadCores, r.sentPerSec, r.sent, r.counted, r.ringDrops)
		})
	}
	col := func(rs []result, f func(result) float64) []float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return xs
	}
	for w, name := range []string{"without", "with"} {
		rs := runs[w]
		t.Logf("median %s sensor: server %.4f cores, load %.3f cores, sent %.0f/s",
			name, median(col(rs, func(r result) float64 { return r.serverCores })),
			median(col(rs, func(r result) float64 { return r.loadCores })),
			median(col(rs, func(r result) float64 { return r.sentPerSec })))
	}
	for _, r := range runs[1] {
		t.Logf("with sensor: counted/sent = %.4f", r.counted/r.sent)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

var hpingSent = regexp.MustCompile(`(\d+) packets transmitted`)

// TestMeasureSYN sends SYNs from one spoofed address for 10 s, on core 1,
// to a listening port, at hping3 -i WARDEN_SYN_INTERVAL (default u100:
// about 8,000/s when hping3 has a core to itself).
func TestMeasureSYN(t *testing.T) {
	measuring(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	spoofed := netip.MustParseAddr("127.9.9.9")
	interval := "u100"
	if i := os.Getenv("WARDEN_SYN_INTERVAL"); i != "" {
		interval = i
	}
	type result struct{ serverCores, senderCores, perSec, counted, sent float64 }
	var runs [2][]result
	for i := range 6 {
		with := i%2 == 1
		t.Run(map[bool]string{false: "without", true: "with"}[with], func(t *testing.T) {
			var sens *sensor.Sensor
			sink := newCounts()
			if with {
				cfg := sensor.DefaultConfig()
				cfg.Enabled = true
				sens, err = sensor.New(cfg, slog.New(slog.DiscardHandler))
				if errors.Is(err, fs.ErrPermission) {
					sensor.NeedForTest(t, "no CAP_NET_RAW: %v", err)
				}
				if err != nil {
					t.Fatal(err)
				}
				sens.ReportTo(sink)
				if err := sens.SetPorts(sensor.Ports{TCP: []uint16{uint16(port)}}); err != nil {
					t.Fatal(err)
				}
				done := make(chan struct{})
				go func() { sens.Run(t.Context()); close(done) }()
				defer func() { sens.Close(); <-done }()
			}
			// Bounded in count and time: stopped after 10 s (hping3 -c
			// alone exits at once after its last SYN if every reply came
			// back, a second later otherwise, so its run is not its
			// sending), it prints how many it sent.
			var out bytes.Buffer
			cmd := exec.Command("taskset", "-c", "1", "hping3", "-q", "-S", "-a", spoofed.String(),
				"-p", strconv.Itoa(port), "-i", interval, "-c", "200000", "127.0.0.1")
			cmd.Stdout, cmd.Stderr = &out, &out
			cpu0, t0 := selfCPU(), time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
			cmd.Process.Signal(os.Interrupt)
			cpu, sending := selfCPU()-cpu0, time.Since(t0)
			err := cmd.Wait()
			m := hpingSent.FindSubmatch(out.Bytes())
			if m == nil {
				t.Fatalf("hping3: %v\n%s", err, out.Bytes())
			}
			sent, _ := strconv.ParseFloat(string(m[1]), 64)
			r := result{
				serverCores: cpu.Seconds() / sending.Seconds(),
				senderCores: childCPU(cmd.ProcessState).Seconds() / sending.Seconds(),
				perSec:      sent / sending.Seconds(),
				sent:        sent,
			}
			if with {
				r.counted = float64(sensor.SettleForTest(sens, func() uint64 { return sink.getKind(spoofed, sensor.SYN) }))
			}
			runs[b2i(with)] = append(runs[b2i(with)], r)
			t.Logf("sensor %v: %.0f SYN/s, server %.4f cores, hping3 %.3f cores, sent %.0f, counted %.0f",
				with, r.perSec, r.serverCores, r.senderCores, r.sent, r.counted)
		})
	}
	for w, name := range []string{"without", "with"} {
		var server, sender, rate []float64
		for _, r := range runs[w] {
			server, sender, rate = append(server, r.serverCores), append(sender, r.senderCores), append(rate, r.perSec)
		}
		t.Logf("median %s sensor: %.0f SYN/s, server %.4f cores, hping3 %.3f cores", name, median(rate), median(server), median(sender))
	}
}
