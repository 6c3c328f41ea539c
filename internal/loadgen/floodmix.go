package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// httpMode is how one connection of the HTTP flood behaves (see
// floodhttp.go for what each does).
type httpMode uint8

const (
	modePipeline httpMode = iota
	modeChurn
	modeIdle
	modePartial
	numHTTPModes
)

var httpModeNames = [numHTTPModes]string{"pipeline", "churn", "idle", "partial"}

func (m httpMode) String() string { return httpModeNames[m] }

// sendsRequests reports whether connections of mode m send whole
// requests; idle and partial ones only hold a connection.
func (m httpMode) sendsRequests() bool { return m == modePipeline || m == modeChurn }

// MaxMixWeight is the largest weight a mode may have in a FloodMix.
const MaxMixWeight = 1000

// FloodMix is the mix of the HTTP flood: each mode's weight, which is its
// share of the flood's connections. The zero FloodMix is invalid; Validate
// refuses it.
type FloodMix struct {
	// Pipeline connections keep alive and pipeline requests.
	Pipeline int `json:"pipeline,omitempty"`
	// Churn connections carry one request each.
	Churn int `json:"churn,omitempty"`
	// Idle connections are opened and say nothing.
	Idle int `json:"idle,omitempty"`
	// Partial connections send half a request header and then nothing.
	Partial int `json:"partial,omitempty"`
}

func (m FloodMix) weights() [numHTTPModes]int {
	return [numHTTPModes]int{m.Pipeline, m.Churn, m.Idle, m.Partial}
}

func (m *FloodMix) set(mode httpMode, w int) {
	switch mode {
	case modePipeline:
		m.Pipeline = w
	case modeChurn:
		m.Churn = w
	case modeIdle:
		m.Idle = w
	case modePartial:
		m.Partial = w
	}
}

// String formats m as ParseFloodMix reads it: "pipeline" for a single
// mode, else "pipeline:3,churn:1", modes in a fixed order and those of
// weight 0 left out.
func (m FloodMix) String() string {
	var b strings.Builder
	ws := m.weights()
	n := 0
	for _, w := range ws {
		if w != 0 {
			n++
		}
	}
	for i, w := range ws {
		if w == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(httpModeNames[i])
		if n > 1 || w != 1 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(w))
		}
	}
	return b.String()
}

// check reports why m cannot be used, or nil.
func (m FloodMix) check() error {
	sum := 0
	for i, w := range m.weights() {
		if w < 0 || w > MaxMixWeight {
			return fmt.Errorf("weight of %s must be 0-%d, got %d", httpModeNames[i], MaxMixWeight, w)
		}
		sum += w
	}
	if sum == 0 {
		return errors.New("no mode has a weight above 0")
	}
	return nil
}

// ParseFloodMix reads a mix written as comma-separated modes, each with an
// optional weight: "pipeline", "churn", "pipeline:3,churn:1,idle:1".
// A mode without a weight has weight 1; a mode may appear once. It
// returns an error naming the part it could not read.
func ParseFloodMix(s string) (FloodMix, error) {
	var m FloodMix
	if strings.TrimSpace(s) == "" {
		return m, errors.New("empty mix: name at least one of pipeline, churn, idle, partial")
	}
	var seen [numHTTPModes]bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		name, weight, hasWeight := strings.Cut(part, ":")
		mode := numHTTPModes
		for i, n := range httpModeNames {
			if name == n {
				mode = httpMode(i)
			}
		}
		if mode == numHTTPModes {
			return FloodMix{}, fmt.Errorf("%q: unknown mode (want pipeline, churn, idle or partial)", part)
		}
		if seen[mode] {
			return FloodMix{}, fmt.Errorf("%q: %s given twice", part, mode)
		}
		seen[mode] = true
		w := 1
		if hasWeight {
			n, err := strconv.Atoi(weight)
			if err != nil || n < 0 || n > MaxMixWeight {
				return FloodMix{}, fmt.Errorf("%q: weight must be a whole number 0-%d", part, MaxMixWeight)
			}
			w = n
		}
		m.set(mode, w)
	}
	if err := m.check(); err != nil {
		return FloodMix{}, err
	}
	return m, nil
}

// split returns the mode of each of n connections: each mode gets its
// share of n by weight (largest remainders first, so the counts add up to
// n), at least one if n allows, and the modes are interleaved in a fixed
// order (smooth weighted round robin), so that consecutive connections,
// and so each source, get a mix.
func (m FloodMix) split(n int) []httpMode {
	ws := m.weights()
	var counts [numHTTPModes]int
	total := 0
	for _, w := range ws {
		total += w
	}
	if total == 0 || n <= 0 {
		return nil
	}
	given := 0
	for i, w := range ws {
		counts[i] = n * w / total
		given += counts[i]
	}
	for given < n { // largest remainder, earlier mode on ties
		best := -1
		for i, w := range ws {
			if w == 0 {
				continue
			}
			if best < 0 || (n*w)%total > (n*ws[best])%total {
				best = i
			}
		}
		counts[best]++
		given++
		ws[best] = 0 // a mode gets at most one of the remainder
	}
	ws = m.weights()
	// Every mode with a weight gets a connection, taken from the largest.
	for i, w := range ws {
		if w > 0 && counts[i] == 0 {
			big := 0
			for j := range counts {
				if counts[j] > counts[big] {
					big = j
				}
			}
			if counts[big] > 1 {
				counts[big]--
				counts[i]++
			}
		}
	}
	out := make([]httpMode, 0, n)
	var cur [numHTTPModes]int
	for len(out) < n {
		best := -1
		for i := range counts {
			if counts[i] == 0 {
				continue
			}
			cur[i] += counts[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= n
		out = append(out, httpMode(best))
	}
	return out
}
