package report

import (
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
)

// ErrNoChart says a report has no timeline to draw.
var ErrNoChart = errors.New("no episode of the report has a timeline to draw")

// WritePNG draws the report's chart (see chart) as a PNG image: tick
// labels in a small bitmap font, the legend left to the text around it.
// It returns ErrNoChart when no episode has a timeline.
func (r *Report) WritePNG(w io.Writer) error {
	c := newChart(r.Episodes, r.top())
	if c == nil {
		return ErrNoChart
	}
	return png.Encode(w, c.image())
}

// Colours of the frame.
var (
	grid = color.RGBA{225, 225, 225, 255}
	axis = color.RGBA{90, 90, 90, 255}
	ink  = color.RGBA{40, 40, 40, 255}
)

func (c *chart) image() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, int(c.W), int(c.H)))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	left, right := int(c.Left), int(c.W-c.Right)
	top, bottom := int(c.Top), int(c.H-c.Bottom)
	for _, t := range c.YTicks {
		y := int(math.Round(t.Pos))
		line(img, left, y, right, y, grid, 1)
		text(img, left-6-textWidth(t.Label), y-glyphH*fontScale/2, t.Label, ink)
	}
	for _, t := range c.XTicks {
		x := int(math.Round(t.Pos))
		line(img, x, bottom, x, bottom+5, axis, 1)
		lx := min(max(x-textWidth(t.Label)/2, 0), img.Rect.Dx()-textWidth(t.Label)) // the last label stays whole
		text(img, lx, bottom+9, t.Label, ink)
	}
	line(img, left, top, left, bottom, axis, 1)
	line(img, left, bottom, right, bottom, axis, 1)
	for _, s := range c.Series {
		col := parseHex(s.Color)
		for i := range s.Points {
			p := s.Points[i]
			q := p
			if i+1 < len(s.Points) {
				q = s.Points[i+1]
			}
			line(img, c.px(p.X, c.W), c.px(p.Y, c.H), c.px(q.X, c.W), c.px(q.Y, c.H), col, 2)
		}
	}
	return img
}

// px rounds a coordinate to a pixel within [-1, size+1], so that no
// value can make a line longer than the image.
func (c *chart) px(v, size float64) int {
	if math.IsNaN(v) {
		return -1
	}
	return int(math.Round(math.Min(math.Max(v, -1), size+1)))
}

// line draws from (x0,y0) to (x1,y1), width pixels wide (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, width int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		for i := range width {
			for j := range width {
				if image.Pt(x0+i, y0+j).In(img.Rect) {
					img.SetRGBA(x0+i, y0+j, c)
				}
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func parseHex(s string) color.RGBA {
	v, err := strconv.ParseUint(s[1:], 16, 32)
	if err != nil || len(s) != 7 {
		return ink
	}
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

// The tick labels' font: 5×7 cells, drawn twice their size.
const (
	glyphW, glyphH = 5, 7
	fontScale      = 2
)

// glyphs holds the characters axis labels use, a row per byte, the
// leftmost pixel in bit 4.
var glyphs = map[rune][glyphH]uint8{
	'0': {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110},
	'1': {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110},
	'2': {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111},
	'3': {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110},
	'4': {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010},
	'5': {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110},
	'6': {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110},
	'7': {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000},
	'8': {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110},
	'9': {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100},
	':': {0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000},
	'-': {0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000},
	'.': {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100},
	'k': {0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010},
	'M': {0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001},
	'G': {0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111},
	'T': {0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100},
}

// advance is the width of one character, spacing included.
const advance = (glyphW + 1) * fontScale

func textWidth(s string) int { return len([]rune(s))*advance - fontScale }

// text draws s with its top left corner at (x, y); characters the font
// lacks are left blank.
func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range s {
		g := glyphs[r]
		for row := range glyphH {
			for col := range glyphW {
				if g[row]>>(glyphW-1-col)&1 == 0 {
					continue
				}
				for i := range fontScale {
					for j := range fontScale {
						if p := image.Pt(x+col*fontScale+i, y+row*fontScale+j); p.In(img.Rect) {
							img.SetRGBA(p.X, p.Y, c)
						}
					}
				}
			}
		}
		x += advance
	}
}
