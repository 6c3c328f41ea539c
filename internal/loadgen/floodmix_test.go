package loadgen

import (
	"strings"
	"testing"
)

func TestParseFloodMix(t *testing.T) {
	tests := []struct {
		in      string
		want    FloodMix
		wantErr string // "" means no error
	}{
		{in: "pipeline", want: FloodMix{Pipeline: 1}},
		{in: "churn", want: FloodMix{Churn: 1}},
		{in: "pipeline:3,churn:1", want: FloodMix{Pipeline: 3, Churn: 1}},
		{in: " idle:2 , partial ", want: FloodMix{Idle: 2, Partial: 1}},
		{in: "pipeline:0,churn", want: FloodMix{Churn: 1}},
		{in: "partial:1000", want: FloodMix{Partial: 1000}},
		{in: "", wantErr: "empty mix"},
		{in: "pipeline:0", wantErr: "no mode has a weight above 0"},
		{in: "loud", wantErr: `"loud": unknown mode`},
		{in: "pipeline,pipeline:2", wantErr: `"pipeline:2": pipeline given twice`},
		{in: "churn:-1", wantErr: `"churn:-1": weight must be a whole number 0-1000`},
		{in: "churn:1001", wantErr: "weight must be"},
		{in: "churn:1.5", wantErr: "weight must be"},
		{in: "churn:", wantErr: "weight must be"},
		{in: "pipeline,", wantErr: `"": unknown mode`},
		{in: "Pipeline", wantErr: "unknown mode"},
	}
	for _, tt := range tests {
		got, err := ParseFloodMix(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseFloodMix(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseFloodMix(%q) = %+v, %v; want error %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestFloodMixString(t *testing.T) {
	tests := []struct {
		mix  FloodMix
		want string
	}{
		{FloodMix{Pipeline: 1}, "pipeline"},
		{FloodMix{Churn: 2}, "churn:2"},
		{FloodMix{Pipeline: 3, Churn: 1}, "pipeline:3,churn:1"},
		{FloodMix{Pipeline: 1, Idle: 1, Partial: 1}, "pipeline:1,idle:1,partial:1"},
	}
	for _, tt := range tests {
		if got := tt.mix.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.mix, got, tt.want)
		}
	}
}

func TestFloodMixSplit(t *testing.T) {
	tests := []struct {
		mix  FloodMix
		n    int
		want [numHTTPModes]int // connections per mode
	}{
		{FloodMix{Pipeline: 1}, 5, [numHTTPModes]int{5, 0, 0, 0}},
		{FloodMix{Pipeline: 3, Churn: 1}, 1022, [numHTTPModes]int{767, 255, 0, 0}}, // 766.5 and 255.5: the tie goes to the first
		{FloodMix{Pipeline: 1, Churn: 1, Idle: 1}, 10, [numHTTPModes]int{4, 3, 3, 0}},
		{FloodMix{Pipeline: 1000, Partial: 1}, 10, [numHTTPModes]int{9, 0, 0, 1}}, // every mode gets one
		{FloodMix{Pipeline: 1, Churn: 1, Idle: 1, Partial: 1}, 2, [numHTTPModes]int{1, 1, 0, 0}},
	}
	for _, tt := range tests {
		modes := tt.mix.split(tt.n)
		if len(modes) != tt.n {
			t.Fatalf("%v.split(%d) gave %d modes", tt.mix, tt.n, len(modes))
		}
		var got [numHTTPModes]int
		for _, m := range modes {
			got[m]++
		}
		if got != tt.want {
			t.Errorf("%v.split(%d) = %v per mode, want %v", tt.mix, tt.n, got, tt.want)
		}
	}
	// Interleaved: a 1:1 mix alternates, so each source gets both.
	modes := FloodMix{Pipeline: 1, Churn: 1}.split(6)
	for i := 1; i < len(modes); i++ {
		if modes[i] == modes[i-1] {
			t.Errorf("split(6) of 1:1 = %v, want the modes alternating", modes)
			break
		}
	}
}

// FuzzParseFloodMix checks that any input is read or refused without a
// panic, and that what is read is valid and survives String and a
// second parse.
func FuzzParseFloodMix(f *testing.F) {
	f.Add("pipeline")                          // the default
	f.Add("pipeline:3,churn:1")                // a typical heavy mix
	f.Add("pipeline:0,churn:0")                // all weights zero
	f.Add("idle:1000,partial:1000,churn:1000") // largest weights
	f.Add(",,")                                // empty parts
	f.Add("churn:99999999999999999999")        // weight overflowing int
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseFloodMix(s)
		if err != nil {
			return
		}
		if err := m.check(); err != nil {
			t.Fatalf("ParseFloodMix(%q) = %+v, which check refuses: %v", s, m, err)
		}
		again, err := ParseFloodMix(m.String())
		if err != nil || again != m {
			t.Fatalf("ParseFloodMix(%q) = %+v; its String %q reads back as %+v, %v", s, m, m.String(), again, err)
		}
		if modes := m.split(17); len(modes) != 17 {
			t.Fatalf("%+v.split(17) gave %d", m, len(modes))
		}
	})
}
