package udptracker

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

// startRefusing runs a server whose tracker is in allowlist mode with
// nothing registered, so every announce is refused.
func startRefusing(t *testing.T, cfg Config, o options) *Server {
	t.Helper()
	tr := tracker.New(memswarm.New(swarmtest.Config()), emptyRegistry{}, tracker.DefaultConfig(), discardLog())
	s, err := listen("127.0.0.1:0", tr, cfg, discardLog(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// TestBatchSizeOneAnswersRefusals: with udp.batch_size = 1 every read
// fills its batch, which the worker took for "behind" and so shed every
// refusal: refused clients got silence and retried. An idle server must
// answer each one, whatever the batch size and I/O path.
func TestBatchSizeOneAnswersRefusals(t *testing.T) {
	for _, tt := range []struct {
		name      string
		batchSize int
		portable  bool
	}{
		{"batch 1", 1, false},
		{"batch 1 x/net", 1, true},
		{"batch 2", 2, false},
		{"batch 64", 64, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Workers, cfg.BatchSize = 1, tt.batchSize
			s := startRefusing(t, cfg, options{portable: tt.portable})
			c := dial(t, netip.AddrPort{}, s.Addr())
			cid := c.connect()
			for i := range 20 {
				r := c.roundTrip(announce{cid: cid, tid: uint32(i), ih: testHash(i)}.pkt(), 5*time.Second)
				if r == nil {
					t.Fatalf("refused announce %d got no reply; stats %+v", i, s.Stats())
				}
				if got := errorText(t, r); got != "torrent not registered on this tracker" {
					t.Fatalf("refused announce %d: %q", i, got)
				}
			}
			if st := s.Stats(); st.ShedRefusals != 0 {
				t.Errorf("idle server shed %d refusals", st.ShedRefusals)
			}
		})
	}
}

// shedBench is one worker of a server in allowlist mode with nothing
// registered, driven batch by batch by the test, on a clock the test sets.
type shedBench struct {
	t        *testing.T
	s        *Server
	w        *worker
	c        *client
	clk      *fakeClock
	pkt      []byte // a refused announce
	capacity uint32 // the receive buffer, as the kernel counts it
	per      float64
}

func newShedBench(t *testing.T, batchSize int) *shedBench {
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize = 1, batchSize
	tr := tracker.New(memswarm.New(swarmtest.Config()), emptyRegistry{}, tracker.DefaultConfig(), discardLog())
	clk := newFakeClock()
	s, err := listen("127.0.0.1:0", tr, cfg, discardLog(), options{now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b := &shedBench{t: t, s: s, w: s.workers[0], c: dial(t, netip.AddrPort{}, s.Addr()), clk: clk}
	cid := s.jarForTest().issue(netip.MustParseAddr("127.0.0.1"), clk.now())
	b.pkt = announce{cid: cid, tid: 1}.pkt()
	if _, b.capacity, err = b.w.queue.read(); err != nil {
		t.Fatal(err)
	}
	return b
}

// fill queues refused announces, unread, until the kernel counts at
// least frac of the receive buffer taken, and returns how many.
func (b *shedBench) fill(frac float64) int {
	n := 0
	for {
		queued, _, err := b.w.queue.read()
		if err != nil {
			b.t.Fatal(err)
		}
		if float64(queued) >= frac*float64(b.capacity) || n == 10000 {
			if n > 0 {
				b.per = float64(queued) / float64(n)
			}
			return n
		}
		if _, err := b.c.conn.Write(b.pkt); err != nil {
			b.t.Fatal(err)
		}
		n++
	}
}

// serve serves one batch and reports how many datagrams it read and
// whether it shed or answered their refusals.
func (b *shedBench) serve() (read int, shed, answered bool) {
	before := b.s.Stats()
	if err := b.w.serveBatch(); err != nil {
		b.t.Fatal(err)
	}
	after := b.s.Stats()
	// Answered: told or calmed (refusal_reply = "calm": one client, one torrent).
	return int(after.Received - before.Received), after.ShedRefusals > before.ShedRefusals, after.AnnouncesFailed > before.AnnouncesFailed
}

// TestShedUnderQueuePressure queues refused announces before the worker
// reads any, then serves them batch by batch:
//
//   - a deep backlog (three quarters of the receive buffer): every batch
//     read with shedDepth datagrams or more still queued is shed, and once
//     the queue is empty the next refusal is answered;
//   - a shallow backlog (under shedDepth/2 datagrams) is never shed,
//     whatever the batch size;
//   - with batches of shedDepth, the read of shedDepth is shed and the
//     read of the rest answered, without reading the queue.
func TestShedUnderQueuePressure(t *testing.T) {
	if !haveBacklog {
		t.Skip("the receive queue cannot be read here: the worker never sheds")
	}
	for _, batchSize := range []int{1, 8} {
		t.Run(fmt.Sprintf("batch %d/deep", batchSize), func(t *testing.T) {
			b := newShedBench(t, batchSize)
			sent := b.fill(0.75)
			shed, answered := 0, 0
			for served := 0; served < sent; {
				left := sent - served
				n, wasShed, wasAnswered := b.serve()
				served += n
				if !wasShed && left-n >= shedDepth {
					t.Errorf("answered with %d datagrams left after the read, shedDepth or more", left-n)
				}
				shed += b2i(wasShed)
				answered += b2i(wasAnswered)
			}
			t.Logf("%d refused announces queued (%.0f bytes each, %d-byte buffer): %d batches shed, %d answered", sent, b.per, b.capacity, shed, answered)
			if shed == 0 {
				t.Fatal("nothing shed")
			}
			b.clk.advance(recheckAfter) // the last reading of the queue lapses
			if _, err := b.c.conn.Write(b.pkt); err != nil {
				t.Fatal(err)
			}
			if _, wasShed, wasAnswered := b.serve(); wasShed || !wasAnswered {
				t.Fatalf("after the queue emptied: shed %v, answered %v; want answered", wasShed, wasAnswered)
			}
		})
		t.Run(fmt.Sprintf("batch %d/shallow", batchSize), func(t *testing.T) {
			b := newShedBench(t, batchSize)
			sent := b.fill(float64(shedBytes) / 2 / float64(b.capacity) * 0.9)
			for served := 0; served < sent; {
				n, wasShed, wasAnswered := b.serve()
				served += n
				if wasShed || !wasAnswered {
					t.Fatalf("a backlog of %d (%.0f bytes) was shed with %d left", sent, float64(sent)*b.per, sent-served)
				}
			}
			t.Logf("a backlog of %d answered in full", sent)
		})
	}
	t.Run("batch 64", func(t *testing.T) {
		b := newShedBench(t, shedDepth)
		for range shedDepth + 10 {
			if _, err := b.c.conn.Write(b.pkt); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond) // all queued
		if n, wasShed, _ := b.serve(); n != shedDepth || !wasShed {
			t.Fatalf("read of %d: shed %v, want %d read and shed", n, wasShed, shedDepth)
		}
		if n, wasShed, wasAnswered := b.serve(); n != 10 || wasShed || !wasAnswered {
			t.Fatalf("read of %d: shed %v, answered %v; want the last 10 answered", n, wasShed, wasAnswered)
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
