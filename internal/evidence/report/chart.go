package report

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// A chart is requests per second over time for the top sources, laid out
// once in its own coordinates (W × H units) and drawn by both the SVG of
// the HTML page and the PNG beside the Markdown. Each series has one
// point per bucket of its episode's timeline, at the bucket's middle; a
// bucket's rate is its count over its length.
type chart struct {
	W, H                     float64
	Left, Right, Top, Bottom float64
	T0, T1                   time.Time
	YMin, YMax               float64 // YMin only on a log scale
	Log                      bool
	XTitle, YTitle           string
	XTicks, YTicks           []tick
	Series                   []series
}

type tick struct {
	Pos   float64 // x for XTicks, y for YTicks
	Label string
}

type series struct {
	Label  string
	Color  string
	Points []point
	Peak   float64 // the highest rate drawn
}

type point struct{ X, Y float64 }

// palette is the Okabe–Ito colours, told apart with most colour-vision
// deficiencies and in greyscale print by their order.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

// newChart lays out the timelines of the first top drawable episodes
// (eps are sorted by requests). It returns nil when none can be drawn.
func newChart(eps []Episode, top int) *chart {
	c := &chart{W: 960, H: 360, Left: 64, Right: 36, Top: 16, Bottom: 48} // Right holds half the last time label
	var picked []*Episode
	for i := range eps {
		if len(picked) == top || len(picked) == len(palette) {
			break
		}
		if eps[i].drawable() {
			picked = append(picked, &eps[i])
		}
	}
	if len(picked) == 0 {
		return nil
	}
	maxRate := 0.0
	for i, ep := range picked {
		t := ep.Timeline
		bucket := time.Duration(t.BucketSeconds) * time.Second
		end := t.Start.Add(time.Duration(len(t.Counts)) * bucket)
		if i == 0 || t.Start.Before(c.T0) {
			c.T0 = t.Start
		}
		if end.After(c.T1) {
			c.T1 = end
		}
		for _, n := range t.Counts {
			maxRate = max(maxRate, float64(n)/float64(t.BucketSeconds))
		}
	}
	c.T0, c.T1 = c.T0.UTC(), c.T1.UTC()
	c.yScale(picked, maxRate)
	c.xTicks()

	for i, ep := range picked {
		t := ep.Timeline
		s := series{Label: fmt.Sprintf("%s (%s)", ep.Source, orgName(ep.ASN, ep.Org)), Color: palette[i], Points: make([]point, len(t.Counts))}
		bucket := float64(t.BucketSeconds)
		for j, n := range t.Counts {
			r := float64(n) / bucket
			s.Peak = max(s.Peak, r)
			at := t.Start.Add(time.Duration((float64(j) + 0.5) * bucket * float64(time.Second)))
			s.Points[j] = point{X: c.x(at), Y: c.y(r)}
		}
		c.Series = append(c.Series, s)
	}
	return c
}

func (c *chart) plotW() float64 { return c.W - c.Left - c.Right }
func (c *chart) plotH() float64 { return c.H - c.Top - c.Bottom }

func (c *chart) x(t time.Time) float64 {
	span := c.T1.Sub(c.T0).Seconds()
	return c.Left + t.Sub(c.T0).Seconds()/span*c.plotW()
}

func (c *chart) y(v float64) float64 {
	if !c.Log {
		return c.Top + (1-v/c.YMax)*c.plotH()
	}
	if v <= c.YMin {
		return c.Top + c.plotH()
	}
	f := (math.Log10(v) - math.Log10(c.YMin)) / (math.Log10(c.YMax) - math.Log10(c.YMin))
	return c.Top + (1-f)*c.plotH()
}

// logRatio is how many times smaller than the largest peak a drawn
// peak may be before the rate axis turns logarithmic, so that a slow
// source stays visible beside a flood.
const logRatio = 50

// yScale picks the rate axis: linear from 0, or logarithmic between
// powers of ten when the peaks are far apart.
func (c *chart) yScale(eps []*Episode, maxRate float64) {
	minPeak := maxRate
	minRate := maxRate
	for _, ep := range eps {
		t := ep.Timeline
		peak := 0.0
		for _, n := range t.Counts {
			r := float64(n) / float64(t.BucketSeconds)
			peak = max(peak, r)
			if r > 0 {
				minRate = min(minRate, r)
			}
		}
		minPeak = min(minPeak, peak)
	}
	if minPeak > 0 && maxRate/minPeak > logRatio {
		c.Log = true
		c.YMin = math.Pow(10, math.Floor(math.Log10(minRate)))
		c.YMax = math.Pow(10, math.Ceil(math.Log10(maxRate)))
		if c.YMax <= c.YMin {
			c.YMax = c.YMin * 10
		}
		for v := c.YMin; v <= c.YMax*1.0001; v *= 10 {
			c.YTicks = append(c.YTicks, tick{Pos: c.y(v), Label: compact(v)})
		}
		c.YTitle = "requests per second (log scale)"
		return
	}
	step := niceStep(maxRate / 4)
	c.YMax = math.Max(step, math.Ceil(maxRate/step)*step)
	for v := 0.0; v <= c.YMax*1.0001; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: c.y(v), Label: compact(v)})
	}
	c.YTitle = "requests per second"
}

// tickSteps are the spacings the time axis may use.
var tickSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
}

// maxXTicks is the most labels the time axis holds.
const maxXTicks = 8

func (c *chart) xTicks() {
	span := c.T1.Sub(c.T0)
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= maxXTicks {
			step = s
			break
		}
	}
	for span/step > maxXTicks { // longer than the table foresees
		step *= 2
	}
	layout := "15:04:05"
	switch {
	case step >= 24*time.Hour:
		layout = "01-02"
	case step >= time.Minute:
		layout = "15:04"
	}
	t := c.T0.Truncate(step)
	if t.Before(c.T0) {
		t = t.Add(step)
	}
	for ; !t.After(c.T1); t = t.Add(step) {
		c.XTicks = append(c.XTicks, tick{Pos: c.x(t), Label: t.Format(layout)})
	}
	c.XTitle = "time (UTC)"
	if c.T0.Format(time.DateOnly) == c.T1.Add(-time.Nanosecond).Format(time.DateOnly) {
		c.XTitle += ", " + c.T0.Format(time.DateOnly)
	} else {
		c.XTitle += ", " + c.T0.Format(time.DateOnly) + " to " + c.T1.Format(time.DateOnly)
	}
}

// niceStep returns the smallest of 1, 2, 2.5 and 5 times a power of ten
// that is at least v (1 for v <= 0).
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// compact writes an axis value: 2500 as "2.5k", 3000000 as "3M".
func compact(v float64) string {
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return strconv.FormatFloat(v/u.div, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
