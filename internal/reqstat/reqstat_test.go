package reqstat

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{-time.Second, 0},
		{time.Microsecond, 0},
		{10 * time.Microsecond, 0},
		{10*time.Microsecond + 1, 1},
		{20 * time.Microsecond, 1},
		{20*time.Microsecond + 1, 2},
		{40 * time.Microsecond, 2},
		{time.Millisecond, 7}, // 10µs<<7 = 1.28 ms
		{UpperBound(NumBuckets - 2), NumBuckets - 2},
		{UpperBound(NumBuckets-2) + 1, NumBuckets - 1},
		{time.Hour, NumBuckets - 1},
	}
	for _, tt := range tests {
		if got := bucketOf(tt.d); got != tt.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	// Every bucket holds exactly the durations between its bounds.
	for i := range NumBuckets - 1 {
		if got := bucketOf(UpperBound(i)); got != i {
			t.Errorf("bucketOf(UpperBound(%d)) = %d", i, got)
		}
		if got := bucketOf(UpperBound(i) + 1); got != i+1 {
			t.Errorf("bucketOf(UpperBound(%d)+1) = %d", i, got)
		}
	}
}

func TestFamilyOf(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want Family
	}{
		{"192.0.2.1", IPv4},
		{"::ffff:192.0.2.1", IPv4},
		{"2001:db8::1", IPv6},
		{"::1", IPv6},
	} {
		if got := FamilyOf(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("FamilyOf(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestCountersTable(t *testing.T) {
	var a, b Counters
	a.Count(Announce, IPv4, OK)
	a.Count(Announce, IPv4, OK)
	b.Count(Scrape, IPv6, RefusedRevoked)
	b.Count(Announce, IPv4, Shed)
	a.Observe(5*time.Microsecond, 3)
	b.Observe(time.Millisecond, 1)
	var tab Table
	a.AddTo(&tab)
	b.AddTo(&tab)
	if got := tab.Requests[Announce][IPv4][OK]; got != 2 {
		t.Errorf("announce ipv4 ok = %d, want 2", got)
	}
	if got := tab.Requests[Scrape][IPv6][RefusedRevoked]; got != 1 {
		t.Errorf("scrape ipv6 refused_revoked = %d, want 1", got)
	}
	if got := tab.ByOutcome(); got[OK] != 2 || got[Shed] != 1 || got[RefusedRevoked] != 1 {
		t.Errorf("ByOutcome = %v", got)
	}
	if got := tab.Latency.Count(); got != 4 {
		t.Errorf("latency count = %d, want 4", got)
	}
	if tab.Latency.Counts[0] != 3 || tab.Latency.Counts[7] != 1 {
		t.Errorf("latency counts = %v", tab.Latency.Counts)
	}
	if want := 15*time.Microsecond + time.Millisecond; tab.Latency.Sum != want {
		t.Errorf("latency sum = %v, want %v", tab.Latency.Sum, want)
	}
	var sum Table
	sum.Add(&tab)
	sum.Add(&tab)
	if sum.Requests[Announce][IPv4][OK] != 4 || sum.Latency.Count() != 8 || sum.Latency.Sum != 2*tab.Latency.Sum {
		t.Errorf("Add twice = %+v", sum)
	}

	js, err := json.Marshal(tab)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"announce":{"ipv4":{"ok":2,"shed":1}}`, `"scrape":{"ipv6":{"refused_revoked":1}}`, `{"le_us":"10","count":3}`, `{"le_us":"+Inf","count":4}`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON %s lacks %s", js, want)
		}
	}
}

func TestNames(t *testing.T) {
	// The names are label values: every enum value has one, and they are
	// distinct.
	seen := map[string]bool{}
	for o := range NumOutcomes {
		n := o.String()
		if n == "" || seen[n] {
			t.Errorf("outcome %d: name %q empty or repeated", o, n)
		}
		seen[n] = true
	}
	for k := range NumKinds {
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

func TestCountAllocs(t *testing.T) {
	var c Counters
	if n := testing.AllocsPerRun(100, func() {
		c.Count(Announce, IPv6, Limited)
		c.Observe(30*time.Microsecond, 64)
	}); n != 0 {
		t.Errorf("Count and Observe allocate %v times", n)
	}
}

// TestReadWhileCounting reads a worker's counters while it counts: under
// -race this is the check that Table never races with the worker.
func TestReadWhileCounting(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 10_000 {
			c.Count(Scrape, IPv4, OK)
			c.Observe(time.Microsecond, 1)
		}
	})
	var last uint64
	for range 100 {
		var tab Table
		c.AddTo(&tab)
		n := tab.Requests[Scrape][IPv4][OK]
		if n < last {
			t.Fatalf("count went back from %d to %d", last, n)
		}
		last = n
	}
	wg.Wait()
	var tab Table
	c.AddTo(&tab)
	if tab.Requests[Scrape][IPv4][OK] != 10_000 || tab.Latency.Count() != 10_000 {
		t.Errorf("after 10000: %d requests, %d observed", tab.Requests[Scrape][IPv4][OK], tab.Latency.Count())
	}
}

var sinkTable Table

func BenchmarkCount(b *testing.B) {
	var c Counters
	b.ReportAllocs()
	for b.Loop() {
		c.Count(Announce, IPv4, OK)
	}
}

func BenchmarkObserve(b *testing.B) {
	var c Counters
	b.ReportAllocs()
	for b.Loop() {
		c.Observe(37*time.Microsecond, 1)
	}
}

// BenchmarkAddTo is the cost of reading one worker at a scrape.
func BenchmarkAddTo(b *testing.B) {
	var c Counters
	b.ReportAllocs()
	for b.Loop() {
		c.AddTo(&sinkTable)
	}
}
