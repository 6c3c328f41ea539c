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

// TestShedUnderQueuePressure fills a worker's receive queue with refused
// announces before it reads any, then serves it batch by batch: a batch is
// shed only while a quarter of the receive buffer or more is still queued
// after its read, always while half of it is, and the refusals are
// answered again once the queue has drained.
func TestShedUnderQueuePressure(t *testing.T) {
	if !haveBacklog {
		t.Skip("the receive queue cannot be read here: the worker never sheds")
	}
	for _, batchSize := range []int{1, 8} {
		t.Run(fmt.Sprintf("batch %d", batchSize), func(t *testing.T) {
			cfg := testConfig()
			cfg.Workers, cfg.BatchSize = 1, batchSize
			tr := tracker.New(memswarm.New(swarmtest.Config()), emptyRegistry{}, tracker.DefaultConfig(), discardLog())
			s, err := Listen("127.0.0.1:0", tr, nil, cfg, discardLog())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			w := s.workers[0]
			c := dial(t, netip.AddrPort{}, s.Addr())
			cid := s.jarForTest().issue(netip.MustParseAddr("127.0.0.1"), s.jarForTest().now())
			// Queue refused announces, unread, until about three quarters
			// of the receive buffer is taken.
			pkt := announce{cid: cid, tid: 1}.pkt()
			sent := 0
			var queued, capacity uint32
			for {
				if queued, capacity, err = w.queue.read(); err != nil {
					t.Fatal(err)
				}
				if queued*4 >= capacity*3 || sent == 10000 {
					break
				}
				if _, err := c.conn.Write(pkt); err != nil {
					t.Fatal(err)
				}
				sent++
			}
			per := float64(queued) / float64(sent) // bytes a datagram takes
			shed, answered := 0, 0
			for served := 0; served < sent; {
				before := s.Stats()
				if err := w.serveBatch(); err != nil {
					t.Fatal(err)
				}
				after := s.Stats()
				served += int(after.Received - before.Received)
				left := float64(sent-served) * per // truly queued after the read
				wasShed := after.ShedRefusals > before.ShedRefusals
				switch {
				case wasShed && left < float64(capacity)/4:
					t.Errorf("shed with %d datagrams (%.0f bytes) left, under a quarter of the %d-byte buffer", sent-served, left, capacity)
				case !wasShed && left >= float64(capacity)/2:
					t.Errorf("answered with %d datagrams (%.0f bytes) left, half the %d-byte buffer or more", sent-served, left, capacity)
				}
				if wasShed {
					shed++
				}
				if after.ErrorsSent > before.ErrorsSent {
					answered++
				}
			}
			t.Logf("%d refused announces queued (%.0f bytes each, %d of a %d-byte buffer): %d batches shed, %d answered",
				sent, per, queued, capacity, shed, answered)
			if shed == 0 || answered == 0 {
				t.Fatalf("%d batches shed and %d answered, want some of each", shed, answered)
			}
		})
	}
}
