package sensor_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"warden/internal/limit"
	"warden/internal/loadgen"
	"warden/internal/sensor"
	"warden/internal/swarm"
	"warden/internal/swarm/memswarm"
	"warden/internal/tracker"
	"warden/internal/udptracker"
)

// counts is a Sink summing what it is told per source and kind.
type counts struct {
	mu sync.Mutex
	n  map[countKey]uint64
}

type countKey struct {
	src  netip.Addr
	kind sensor.Kind
}

func newCounts() *counts { return &counts{n: make(map[countKey]uint64)} }

func (c *counts) Sensed(src netip.Addr, kind sensor.Kind, n uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[countKey{src, kind}] += n
}

func (c *counts) getKind(src netip.Addr, kind sensor.Kind) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[countKey{src, kind}]
}

// get returns src's kernel drops.
func (c *counts) get(src netip.Addr) uint64 { return c.getKind(src, sensor.KernelDropped) }

// frontend is the UDP frontend with kernel bans and, if asked for, the
// sensor connected to it as warden serve connects them.
type frontend struct {
	srv  *udptracker.Server
	sens *sensor.Sensor // nil without
	sink *counts
}

// startFrontend starts a frontend, with a sensor if withSensor, until
// the test ends, and bans banned.
func startFrontend(t testing.TB, withSensor bool, banned netip.Prefix) *frontend {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	f := &frontend{sink: newCounts()}
	lcfg := limit.DefaultConfig()
	lcfg.TableBytes = 8 << 20
	guard, err := limit.NewGuard(lcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	tcfg := tracker.DefaultConfig()
	tcfg.Mode = tracker.ModeOpen
	tr := tracker.New(memswarm.New(swarm.DefaultConfig()), nil, tcfg, log)
	ucfg := udptracker.DefaultConfig()
	ucfg.Workers, ucfg.KernelBans = 1, true
	if f.srv, err = udptracker.Listen("127.0.0.1:0", tr, guard, ucfg, log); err != nil {
		t.Fatal(err)
	}
	if withSensor {
		scfg := sensor.DefaultConfig()
		scfg.Enabled = true
		f.sens, err = sensor.New(scfg, log)
		if errors.Is(err, fs.ErrPermission) {
			f.srv.Close()
			sensor.NeedForTest(t, "no CAP_NET_RAW: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		f.sens.ReportTo(f.sink)
		guard.OnFilter(func(p []netip.Prefix) {
			if err := f.sens.SetBanned(p); err != nil {
				t.Errorf("SetBanned: %v", err)
			}
		})
		if err := f.sens.SetPorts(sensor.Ports{UDP: []uint16{f.srv.Addr().Port()}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.srv.Run(ctx) })
	wg.Go(func() { guard.Run(ctx) })
	if f.sens != nil {
		wg.Go(func() {
			if err := f.sens.Run(ctx); err != nil {
				t.Errorf("sensor: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	if _, err := guard.Limiter().Ban(banned, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); f.srv.Stats().KernelBans == 0 || (f.sens != nil && f.sens.Stats().Banned == 0); {
		if time.Now().After(deadline) {
			t.Fatalf("the ban did not reach the filters: frontend %+v", f.srv.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

// TestKernelDroppedMatchesLoad runs the UDP frontend with kernel bans and
// the sensor connected to it as warden serve connects them, bans a
// source, floods the frontend from it with warden load's generator, and
// checks that the sensor counted, within 5%, every datagram the generator
// says it sent, although none reached the frontend.
func TestKernelDroppedMatchesLoad(t *testing.T) {
	flooder := netip.MustParseAddr("127.1.0.1")
	f := startFrontend(t, true, netip.PrefixFrom(flooder, 32))
	srv, sens, sink := f.srv, f.sens, f.sink
	total := uint64(0)
	for _, mode := range []loadgen.FloodMode{loadgen.FloodGarbage, loadgen.FloodBadCookie} {
		t.Run(string(mode), func(t *testing.T) {
			before, received := sink.get(flooder), srv.Stats().Received
			cfg := loadgen.DefaultConfig()
			cfg.UDP = srv.Addr().String()
			cfg.Scenario = loadgen.ScenarioFlood
			cfg.LegitRate = 0
			cfg.FloodSources = netip.PrefixFrom(flooder, 32)
			cfg.FloodMode = mode
			cfg.FloodRate = 50_000
			cfg.Warmup, cfg.Duration = 0, 2*time.Second
			rep, err := loadgen.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			sent := rep.Flood.Flood.Sent
			got := sensor.SettleForTest(sens, func() uint64 { return sink.get(flooder) }) - before
			total += got
			t.Logf("%s: load sent %d (%.0f/s), sensor counted %d", mode, sent, rep.Flood.Flood.SentPerSec, got)
			if sent < 10_000 {
				t.Fatalf("the generator sent only %d datagrams", sent)
			}
			if d := float64(got) - float64(sent); d > 0.05*float64(sent) || -d > 0.05*float64(sent) {
				t.Errorf("sensor counted %d datagrams dropped from %v, the load tool sent %d", got, flooder, sent)
			}
			if n := srv.Stats().Received - received; n != 0 {
				t.Errorf("%d datagrams of the banned source reached the frontend", n)
			}
		})
	}
	st := sens.Stats()
	if st.KernelDropped != total {
		t.Errorf("sensor Stats %+v: want KernelDropped %d", st, total)
	}
	t.Logf("sensor: %d packets in its rings, %d lost for want of room", st.RingPackets, st.RingDrops)
}
