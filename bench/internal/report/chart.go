package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart geometry, in pixels.
const (
	chartW, chartH = 1240, 640
	panelTop       = 70
	panelBottom    = 540 // the x axis
	panelLeft      = 70
	panelGap       = 60
	lineH          = 13 // basicfont.Face7x13
	charW          = 7
)

var (
	white    = color.RGBA{255, 255, 255, 255}
	ink      = color.RGBA{30, 30, 30, 255}
	grid     = color.RGBA{225, 225, 225, 255}
	goalInk  = color.RGBA{200, 40, 40, 255}
	palettes = []color.RGBA{
		{120, 120, 120, 255}, // mock
		{70, 70, 70, 255},    // bare proxy
		{31, 119, 180, 255},  // SQLite
		{255, 127, 14, 255},  // PostgreSQL + Redis
		{44, 160, 44, 255},   // two nodes
		{148, 103, 189, 255},
	}
)

// WriteChart draws requests per second as a share of the bare proxy's, per shape and
// concurrency, one bar per target, with the throughput goals as lines, and writes it as PNG.
func (r *Results) WriteChart(w io.Writer) error {
	return png.Encode(w, r.Chart())
}

// Chart renders the chart (see WriteChart).
func (r *Results) Chart() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	text(img, panelLeft, 24, ink, fmt.Sprintf("FluxCode benchmark %s (%s): requests/s as %% of the bare reverse proxy, higher is better", r.Date, r.Mode))
	text(img, panelLeft, 42, ink, fmt.Sprintf("%s, %d cores; labels are req/s; red lines: goals (%.0f %%%% PG+Redis, %.0f %%%% SQLite at c=32 JSON)", r.Machine.CPU, r.Machine.Cores, 100*goalPGShare, 100*goalSQLiteShare))

	// One scale for both panels: up to the largest share of a proxy (the mock alone, with no
	// hop at all, is cut off at the top), at least 120 %, in 20 % steps.
	top := 1.2
	for _, c := range r.Cells {
		if !c.RPSOfBare.Missing() && c.Target != Mock && c.Protocol == "" { // the chart shows Anthropic's cells
			top = math.Max(top, float64(c.RPSOfBare))
		}
	}
	top = math.Ceil(top/0.2) * 0.2
	panelW := (chartW - panelLeft - panelGap - 30) / 2
	for i, stream := range []bool{false, true} {
		x0 := panelLeft + i*(panelW+panelGap)
		r.panel(img, x0, panelW, stream, top)
	}
	// Legend.
	x := panelLeft
	for i, t := range r.Targets {
		fill(img, image.Rect(x, chartH-40, x+14, chartH-26), palettes[i%len(palettes)])
		text(img, x+20, chartH-28, ink, t.Name)
		x += 20 + charW*len(t.Name) + 30
	}
	return img
}

// panel draws one shape's groups of bars between x0 and x0+w.
func (r *Results) panel(img *image.RGBA, x0, w int, stream bool, top float64) {
	h := panelBottom - panelTop
	y := func(share float64) int { return panelBottom - int(math.Round(share/top*float64(h))) }
	title := "JSON answers"
	if stream {
		title = "streaming answers (SSE)"
	}
	text(img, x0+w/2-charW*len(title)/2, panelTop-8, ink, title)
	for s := 0.0; s <= top+1e-9; s += 0.2 {
		yy := y(s)
		fill(img, image.Rect(x0, yy, x0+w, yy+1), grid)
		label := fmt.Sprintf("%.0f%%", s*100)
		text(img, x0-8-charW*len(label), yy+4, ink, label)
	}
	fill(img, image.Rect(x0, panelTop, x0+1, panelBottom), ink)
	fill(img, image.Rect(x0, panelBottom, x0+w, panelBottom+1), ink)

	concs := r.Settings.Concurrency
	if len(concs) == 0 {
		return
	}
	groupW := w / len(concs)
	n := max(len(r.Targets), 1)
	barW := (groupW - 20) / n
	for gi, conc := range concs {
		gx := x0 + gi*groupW + 10
		label := fmt.Sprintf("c=%d", conc)
		text(img, gx+(groupW-20)/2-charW*len(label)/2, panelBottom+18, ink, label)
		for ti, t := range r.Targets {
			c, ok := r.Cell(t.Name, stream, conc)
			if !ok {
				continue
			}
			share := float64(c.RPSOfBare)
			if t.Name == Bare {
				share = 1
			}
			if math.IsNaN(share) {
				continue
			}
			bx := gx + ti*barW
			fill(img, image.Rect(bx+2, y(math.Min(share, top)), bx+barW-2, panelBottom), palettes[ti%len(palettes)])
			label := compact(c.RPS)
			lx := bx + barW/2 - charW*len(label)/2
			text(img, lx, y(math.Min(share, top))-4, ink, label)
		}
		if !stream && conc == 32 { // the share goals are judged here only
			for _, g := range []float64{goalPGShare, goalSQLiteShare} {
				dashed(img, gx-4, gx+groupW-16, y(g), goalInk)
			}
		}
	}
}

// compact renders req/s briefly enough to sit above a bar: 950, 3.4k, 12k.
func compact(n Num) string {
	v := float64(n)
	switch {
	case n.Missing():
		return "?"
	case v < 1000:
		return fmt.Sprintf("%.0f", v)
	case v < 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	default:
		return fmt.Sprintf("%.0fk", v/1000)
	}
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r.Intersect(img.Bounds()), &image.Uniform{c}, image.Point{}, draw.Src)
}

func dashed(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x < x1; x += 8 {
		fill(img, image.Rect(x, y, min(x+5, x1), y+2), c)
	}
}

// text draws s with its baseline at y.
func text(img *image.RGBA, x, y int, c color.RGBA, s string) {
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
